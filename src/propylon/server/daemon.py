"""Daemon mode: detach from the terminal, pid file, log file, dropping privileges.

The command that starts a daemon does not return until the daemon has bound its
listeners (or failed to), so a script can rely on the pid file and the ports as
soon as the command exits, and a startup error is printed where it was started.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import sys
from typing import Optional

__all__ = ["daemonize", "DaemonNotifier", "write_pid_file", "remove_pid_file", "drop_privileges"]

log = logging.getLogger(__name__)


class DaemonNotifier:
    """Lets the daemon tell the waiting starter whether start-up worked."""

    def __init__(self, fd: int) -> None:
        self._fd: Optional[int] = fd

    def ready(self) -> None:
        """Start-up worked: the starter exits with status 0."""
        self._send(b"ok")

    def fail(self, message: str) -> None:
        """Start-up failed: the starter prints ``message`` and exits with status 1."""
        self._send(b"error:" + message.encode("utf-8", "replace"))

    def _send(self, data: bytes) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, data)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


def daemonize(error_log: Optional[str]) -> DaemonNotifier:
    """Double-fork into the background; returns in the daemon only.

    The starter waits for :meth:`DaemonNotifier.ready` (exit 0) or ``fail``
    (message on stderr, exit 1). The daemon gets a new session, stdin from
    /dev/null and stdout/stderr appended to ``error_log`` (/dev/null if None).
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    r, w = os.pipe()
    if os.fork() > 0:
        os.close(w)
        _wait_for_daemon(r)  # never returns
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    notifier = DaemonNotifier(w)
    try:
        out = os.open(error_log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        notifier.fail(f"cannot open error_log {error_log}: {e.strerror}")
        os._exit(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in (devnull, out):
        if fd > 2:
            os.close(fd)
    return notifier


def _wait_for_daemon(fd: int) -> None:
    chunks = []
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    if data == b"ok":
        os._exit(0)
    if data.startswith(b"error:"):
        sys.stderr.write(data[6:].decode("utf-8", "replace") + "\n")
    else:
        sys.stderr.write("the daemon exited during start-up; see its error_log\n")
    sys.stderr.flush()
    os._exit(1)


def write_pid_file(path: str) -> None:
    """Write our pid to ``path``, keeping an existing file as ``path.old``."""
    if os.path.exists(path):
        os.replace(path, path + ".old")
    with open(path, "w") as f:
        f.write(f"{os.getpid()}\n")


def remove_pid_file(path: str) -> None:
    """Remove ``path`` if it still names this process (a newer instance may own it)."""
    try:
        with open(path) as f:
            if f.read().strip() != str(os.getpid()):
                return
        os.unlink(path)
    except OSError:
        pass


def drop_privileges(user: Optional[str], group: Optional[str]) -> None:
    """Switch to ``user``/``group`` when running as root (no-op otherwise, with a warning)."""
    if user is None and group is None:
        return
    if os.geteuid() != 0:
        log.warning("not running as root: user/group settings ignored")
        return
    pw = pwd.getpwnam(user) if user else None
    gid = grp.getgrnam(group).gr_gid if group else (pw.pw_gid if pw else os.getgid())
    if pw is not None:
        os.initgroups(pw.pw_name, gid)
    else:
        os.setgroups([gid])
    os.setgid(gid)
    if pw is not None:
        os.setuid(pw.pw_uid)
    log.info("running as user %s, group %s", user or os.getuid(), group or gid)
