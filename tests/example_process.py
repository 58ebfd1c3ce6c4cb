"""Running a lesson example as a real process, for every example test directory.

``ExampleProcess(script, args, env)`` starts ``python <script>`` from the repository
root with ``PROPYLON_LOG=info``, its output in a temporary log file;
``run_example(cls, script, ports, ...)`` waits until every port accepts and stops
the process group (SIGTERM, then SIGKILL) when the ``with`` block ends, whatever
happened inside. The test directories' support modules subclass it with the log
searches their lessons need.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional, TypeVar

REPO = Path(__file__).resolve().parents[1]

P = TypeVar("P", bound="ExampleProcess")


class ExampleProcess:
    """One example process; its stdout and stderr go to a file tests can search."""

    def __init__(self, script: str, args: Iterable[str] = (), env: Optional[dict] = None) -> None:
        self.script = script
        fd, name = tempfile.mkstemp(prefix="propylon-example-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self._out = open(self.log_path, "ab")
        full_env = dict(os.environ, PROPYLON_LOG="info", PYTHONUNBUFFERED="1", **(env or {}))
        self.popen = subprocess.Popen([sys.executable, script, *args], cwd=REPO, env=full_env,
                                      stdout=self._out, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def wait_port(self, port: int, timeout: float = 15.0) -> None:
        """Wait until the example accepts TCP connections on 127.0.0.1:``port``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.script} exited with {self.popen.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.script} did not listen on {port} "
                                         f"within {timeout}s:\n{self.log()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers; remove the log file."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(5.0)
                break
            except subprocess.TimeoutExpired:
                continue
        self._out.close()
        self.log_path.unlink(missing_ok=True)


def wait_port_free(port: int, timeout: float = 15.0) -> None:
    """A previous test's example (or another run) may still hold 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"127.0.0.1:{port} is taken by another program")
        time.sleep(0.1)


@contextlib.contextmanager
def run_example(cls: type[P], script: str, ports: Iterable[int], **kwargs) -> Iterator[P]:
    """Run ``script`` (as ``cls``) until the block ends; ready once every port accepts."""
    ports = list(ports)
    for port in ports:
        wait_port_free(port)
    ex = cls(script, **kwargs)
    try:
        for port in ports:
            ex.wait_port(port)
        yield ex
    finally:
        ex.stop()
