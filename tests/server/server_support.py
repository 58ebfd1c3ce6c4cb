"""Starting server processes for the tests and watching their logs."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"


class Proc:
    """A server process started in its own session, with its output in a file."""

    def __init__(self, args: list[str], log_path: Path, env: Optional[dict] = None) -> None:
        self.log_path = log_path
        full_env = dict(os.environ, PROPYLON_LOG="info", PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        self._out = open(log_path, "ab")
        self.popen = subprocess.Popen([sys.executable, *args], cwd=REPO, env=full_env,
                                      stdout=self._out, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match:
        """Wait until the log (from character ``start``) matches ``pattern``."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.log(), start)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in log within {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def port(self, service: str = "pid", timeout: float = 10.0) -> int:
        m = self.wait_log(rf"{re.escape(service)}: listening on 127\.0\.0\.1:(\d+)", timeout)
        return int(m.group(1))

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 10.0) -> int:
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """Kill the process and anything it forked (its session's group)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._out.close()


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listening on {host}:{port} after {timeout}s")
            time.sleep(0.05)


def ask(port: int, data: bytes = b"", timeout: float = 3.0, source: str = "127.0.0.1") -> bytes:
    """Connect, send ``data`` (then half-close), and read everything the server sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        if data:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def write_conf(path: Path, **fields) -> Path:
    lines = ["---", "version: 1"]
    for k, v in fields.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        lines.append(f"{k}: {v}")
    path.write_text("\n".join(lines) + "\n")
    return path
