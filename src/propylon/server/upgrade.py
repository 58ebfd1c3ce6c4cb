"""Graceful upgrade: handing the listening sockets to a new process.

The new process (started with ``-u``) binds ``upgrade_sock`` and waits; the old
one, on SIGQUIT, connects and sends one message: the bind strings of its listening
sockets (NUL-separated, one per socket, in order) with the sockets themselves
attached as ``SCM_RIGHTS`` ancillary data. The new process answers ``ok`` once it
holds them, and only then does the old one stop accepting. Both sides retry once
a second, ``upgrade_sock_connect_accept_max_retries`` times (default 5).

Because the very same sockets change hands, connections waiting in their accept
queues are never refused: whichever process accepts next serves them.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from typing import Iterable

__all__ = ["send_listeners", "receive_listeners", "UpgradeError"]

log = logging.getLogger(__name__)

_MAX_FDS = 253  # SCM_MAX_FD on Linux
_RETRY_ERRNOS = {errno.ENOENT, errno.ECONNREFUSED, errno.EACCES}


class UpgradeError(OSError):
    """The socket handover did not happen."""


def send_listeners(path: str, listeners: Iterable[tuple[str, socket.socket]], retries: int = 5) -> int:
    """Send ``(bind string, socket)`` pairs to the new process; returns how many.

    Blocks (this runs in the master process or in a worker thread). Raises
    :class:`UpgradeError` when no new process took them.
    """
    pairs = list(listeners)
    if len(pairs) > _MAX_FDS:
        raise UpgradeError(f"too many listening sockets to hand over ({len(pairs)} > {_MAX_FDS})")
    payload = b"\0".join(key.encode() for key, _ in pairs)
    fds = [s.fileno() for _, s in pairs]
    conn = _connect(path, retries)
    try:
        conn.settimeout(max(retries, 1))
        socket.send_fds(conn, [payload or b"\0"], fds)
        conn.shutdown(socket.SHUT_WR)
        answer = conn.recv(16)
    except OSError as e:
        raise UpgradeError(f"handing over the sockets through {path} failed: {e}") from None
    finally:
        conn.close()
    if answer != b"ok":
        raise UpgradeError(f"the new process did not confirm the handover on {path}")
    return len(pairs)


def _connect(path: str, retries: int) -> socket.socket:
    attempt = 0
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            return conn
        except OSError as e:
            conn.close()
            attempt += 1
            if e.errno not in _RETRY_ERRNOS or attempt > retries:
                raise UpgradeError(f"cannot reach the new process on {path}: {e.strerror}") from None
            log.info("upgrade socket %s not ready (%s), retrying", path, e.strerror)
            time.sleep(1)


def receive_listeners(path: str, retries: int = 5) -> dict[str, list[socket.socket]]:
    """Wait on ``path`` for the old process and take its listening sockets.

    Returns ``{bind string: [sockets]}``. Raises :class:`UpgradeError` if nothing
    arrived within ``retries`` seconds.
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        # The old process may run as another user after dropping privileges.
        os.chmod(path, 0o666)
        server.listen(8)
        server.settimeout(1.0)
        log.info("waiting for the listening sockets on %s", path)
        conn = None
        for _ in range(max(retries, 1)):
            try:
                conn, _ = server.accept()
                break
            except socket.timeout:
                continue
        if conn is None:
            raise UpgradeError(f"no process handed over its sockets on {path} within {retries} s")
        with conn:
            conn.settimeout(max(retries, 1))
            msg, fds, _, _ = socket.recv_fds(conn, 65536, _MAX_FDS)
            rest = []
            while chunk := conn.recv(65536):
                rest.append(chunk)
            payload = msg + b"".join(rest)
            keys = [k.decode() for k in payload.split(b"\0")] if payload != b"\0" else []
            if len(keys) != len(fds):
                for fd in fds:
                    os.close(fd)
                raise UpgradeError(f"malformed handover message ({len(keys)} names, {len(fds)} sockets)")
            out: dict[str, list[socket.socket]] = {}
            for key, fd in zip(keys, fds):
                out.setdefault(key, []).append(socket.socket(fileno=fd))
            conn.sendall(b"ok")
    except OSError as e:
        if isinstance(e, UpgradeError):
            raise
        raise UpgradeError(f"receiving the sockets on {path} failed: {e}") from None
    finally:
        server.close()
        try:
            os.unlink(path)
        except OSError:
            pass
    log.info("received %d listening socket(s): %s", sum(map(len, out.values())), ", ".join(out))
    return out
