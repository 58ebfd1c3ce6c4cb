"""Running ``propylon run -c FILE`` as a real process against the lab, for the gateway tests.

:class:`GatewayProcess` is one gateway process and the file it serves; :func:`fill`
puts the lab's addresses (``{blue}``, ``{green}``) and free ports into a file's text.
Requests go through ``http.client`` on loopback, so that status, headers and
redirects are seen as sent. The ``gateway_run`` fixture is in conftest.py.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from support import REPO


class GatewayProcess:
    """One ``propylon run -c`` process and the file it serves."""

    def __init__(self, conf_path: Path, port: int, log_path: Path) -> None:
        self.conf_path = conf_path
        self.port = port
        self.log_path = log_path
        env = dict(os.environ, PROPYLON_LOG="info", PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
        self._out = open(log_path, "ab")
        self.popen = subprocess.Popen([sys.executable, "-m", "propylon", "run", "-c", str(conf_path)],
                                      cwd=REPO, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise AssertionError(f"the gateway exited with {self.popen.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the gateway did not listen within {timeout}s:\n{self.log()}") from None
                time.sleep(0.05)
        self.wait_log("SIGHUP reloads it", timeout)  # ready for reloads too

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def reload(self, text: str, wait_for: Optional[str] = None) -> None:
        """Write a new file and send SIGHUP; wait until ``wait_for`` is logged."""
        self.conf_path.write_text(text)
        self.popen.send_signal(signal.SIGHUP)
        if wait_for is not None:
            self.wait_log(wait_for)

    def request(self, method: str = "GET", path: str = "/", headers: Optional[dict] = None,
                body: Optional[bytes] = None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {},
                         encode_chunked=(headers or {}).get("Transfer-Encoding") == "chunked")
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def request_many(self, requests: list[tuple[str, dict]]) -> list[tuple[int, dict, bytes]]:
        """``GET`` each ``(path, headers)`` in turn on one keep-alive connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        out = []
        try:
            for path, headers in requests:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                out.append((resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()))
        finally:
            conn.close()
        return out

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._out.close()


def wait_until(predicate, timeout: float = 5.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


def fill(text: str, lab, port: int, **extra: object) -> str:
    host, blue = lab.address("blue")
    _, green = lab.address("green")
    values = {"blue": f"{host}:{blue}", "green": f"{host}:{green}", "port": port, **extra}
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text
