"""Child processes of a benchmark run: start them, wait until they answer, stop them.

Every server the harness starts runs in its own process group, so stopping it also
stops the workers it forked. A :class:`ProcessSet` remembers all of them; the
command-line entry point stops the whole set in a ``finally`` block, which also runs on
Ctrl-C (SIGINT raises ``KeyboardInterrupt``) and on SIGTERM (turned into ``SystemExit``).
"""

from __future__ import annotations

import ctypes
import http.client
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

__all__ = [
    "BenchProcess", "ProcessSet", "StartError", "free_port", "group_cpu_seconds", "group_rss_bytes",
    "lost_port_race", "wait_http_ok",
]

_PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A server did not come up; the message says which and why (log tail included)."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def lost_port_race(message: str) -> bool:
    """True if a start-up failure says the port was taken after :func:`free_port`."""
    return "Address already in use" in message or "EADDRINUSE" in message


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to kill it if the harness dies abruptly.

    Only a safety net for SIGKILL of the harness; the normal path stops children
    explicitly. Failure (non-Linux) is ignored on purpose.
    """
    os.setsid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


@dataclass
class BenchProcess:
    """One started server (a process-group leader) and where its output goes.

    ``stop_signal`` is what asks it to quit fast: SIGTERM for nginx, SIGINT for
    Propylon (SIGTERM there starts a long graceful drain, as in Pingora).
    """

    name: str
    popen: subprocess.Popen
    log_path: Path
    stop_signal: int = signal.SIGTERM

    def alive(self) -> bool:
        """True while the leader process has not exited."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 8) -> str:
        """The last ``lines`` lines of the process's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 3.0) -> None:
        """Signal the whole process group, wait up to ``timeout`` s, then SIGKILL it."""
        pgid = self.popen.pid
        self._signal_group(pgid, self.stop_signal)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.1fs; killing it", self.name, timeout)
        # Workers may outlive a leader that exited; the group kill catches them too.
        self._signal_group(pgid, signal.SIGKILL)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.error("%s (pid %d) survived SIGKILL", self.name, pgid)

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass


@dataclass
class ProcessSet:
    """All servers started by one run, stopped together (newest first)."""

    procs: list[BenchProcess] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> BenchProcess:
        """Start ``argv`` in a new session with stdout and stderr going to ``log_path``."""
        log.debug("starting %s: %s", name, " ".join(argv))
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                preexec_fn=_die_with_parent,
            )
        proc = BenchProcess(name, popen, log_path, stop_signal)
        self.procs.append(proc)
        return proc

    def stop(self, proc: BenchProcess) -> None:
        """Stop one process and forget it."""
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        """Stop every process still known, newest first."""
        while self.procs:
            self.stop(self.procs[-1])


def wait_http_ok(
    proc: BenchProcess,
    port: int,
    *,
    path: str = "/",
    https: bool = False,
    expect_body: bytes | None = None,
    timeout: float = 10.0,
    headers: tuple[str, ...] = (),
) -> None:
    """Poll ``http(s)://127.0.0.1:port/path`` until it answers 200 (with ``expect_body``).

    Raises :class:`StartError` if the process exits first or ``timeout`` s pass. A 200
    with the backend's body proves the whole chain (front, upstream, backend) works.
    ``headers`` (``"Name: value"`` lines) go with each request, as with the load.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartError(
                f"{proc.name} exited with code {proc.popen.returncode} during start-up; "
                f"log tail:\n{proc.log_tail()}"
            )
        try:
            status, body = _get(port, path, https, headers)
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200 and (expect_body is None or body == expect_body):
                return
            last = f"status {status}, body {body[:60]!r}"
        time.sleep(0.05)
    raise StartError(
        f"{proc.name} did not answer 200 on 127.0.0.1:{port} within {timeout:.0f}s "
        f"(last: {last}); log tail:\n{proc.log_tail()}"
    )


def _get(port: int, path: str, https: bool, headers: tuple[str, ...] = ()) -> tuple[int, bytes]:
    if https:
        import ssl

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=1.0, context=ctx
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", path, headers=dict(h.split(": ", 1) for h in headers))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _group_pids(pgid: int) -> list[str]:
    """The live processes of group ``pgid`` (empty where ``/proc`` is unavailable)."""
    pids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pids
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            pids.append(entry)
    return pids


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of the live processes of group ``pgid``, summed (from ``/proc``)."""
    total = 0
    for pid in _group_pids(pgid):
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total * os.sysconf("SC_PAGE_SIZE")


def group_cpu_seconds(pgid: int) -> float:
    """User plus system CPU seconds used so far by the live processes of group ``pgid``.

    Read from ``/proc``; lets the report say how many cores a server kept busy.
    Returns 0.0 where ``/proc`` is unavailable.
    """
    ticks = 0
    for pid in _group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        # The command name may hold spaces or parentheses; fields resume after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 12:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
