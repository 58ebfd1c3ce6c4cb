"""Running lesson examples as real processes and talking to them with real clients.

``running(script, port)`` starts ``python <script>`` from the repository root with
``PROPYLON_LOG=info``, waits until it accepts connections on ``port`` and stops it
(SIGTERM, then SIGKILL) when the ``with`` block ends, whatever happened inside.
``curl(...)`` runs the real curl and returns status, headers and body.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

REPO = Path(__file__).resolve().parents[2]


class Example:
    """One example process; its stdout and stderr go to a file we can search."""

    def __init__(self, script: str, args: tuple[str, ...] = ()) -> None:
        self.script = script
        fd, name = tempfile.mkstemp(prefix="propylon-example-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self._out = open(self.log_path, "ab")
        env = dict(os.environ, PROPYLON_LOG="info", PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen([sys.executable, script, *args], cwd=REPO, env=env,
                                      stdout=self._out, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 5.0, start: int = 0) -> re.Match:
        """Wait until the log (from character ``start``) matches ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log(), start)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in the log of {self.script} "
                                     f"within {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def wait_port(self, port: int, timeout: float = 10.0) -> None:
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
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self._out.close()
        self.log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def running(script: str, *ports: int, args: tuple[str, ...] = ()) -> Iterator[Example]:
    """Run ``script`` until the block ends; ready once every port in ``ports`` accepts."""
    for port in ports:
        _wait_port_free(port)
    ex = Example(script, args)
    try:
        for port in ports:
            ex.wait_port(port)
        yield ex
    finally:
        ex.stop()


def _wait_port_free(port: int, timeout: float = 10.0) -> None:
    """A previous test's example may still be closing its listener on ``port``."""
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


@dataclass
class Reply:
    """What curl got: status, headers (lower-case names, in order) and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    seconds: float

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name``, or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def curl(url: str, *args: str, timeout: float = 10.0) -> Reply:
    """``curl -s -i <args> <url>`` over loopback; raises if curl itself fails."""
    t0 = time.monotonic()
    r = subprocess.run(["curl", "-s", "-S", "-i", "--max-time", str(timeout), *args, url],
                       capture_output=True, timeout=timeout + 5)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        raise AssertionError(f"curl {url} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return parse_reply(r.stdout, elapsed)


def parse_reply(raw: bytes, seconds: float = 0.0) -> Reply:
    """Split ``curl -i`` output into status, headers and body (skipping 1xx heads)."""
    while True:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200 and rest.startswith(b"HTTP/"):
            raw = rest
            continue
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip().lower(), v.strip()))
        return Reply(status, headers, rest, seconds)
