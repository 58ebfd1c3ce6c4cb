"""Helpers of the TLS / HTTP/2 / WebSocket / gRPC example tests (lessons 7–24).

``running(script, port, env=...)`` starts ``python <script>`` from the repository
root with ``PROPYLON_LOG=info``, waits until it accepts connections on ``port`` and
stops its process group (SIGTERM, then SIGKILL) when the block ends, whatever
happened inside. ``curl(...)`` runs the real curl (never through a proxy from the
environment) and returns what it printed, its verbose trace and the values asked
for with ``-w``.

The lab's ports are fixed and may be served by another test run on the machine,
which can stop a member at any moment. A 502 (or gRPC UNAVAILABLE) is never an
expected answer here, so such an answer raises :class:`LabGone`, and
``@retry_if_lab_vanishes`` runs the test again (at most three times in all) once
every member answers again.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from example_process import ExampleProcess, run_example

CERTS = Path(os.environ.get("PROPYLON_LAB_CERTS", "/tmp/propylon-lab/certs"))
CA = str(CERTS / "ca.crt")
#: Separates the body from the ``-w`` values in curl's output.
_MARK = "\n--propylon-write-out--\n"

#: Set by conftest: brings back every lab member these tests need.
ensure_lab: Optional[Callable[[], None]] = None


class LabGone(AssertionError):
    """An upstream of the lab stopped answering during a test (a 502 through the proxy)."""


def retry_if_lab_vanishes(test: Callable) -> Callable:
    """Run ``test`` again, up to three times in all, when it ends with :class:`LabGone`."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        for attempt in range(3):
            try:
                return test(*args, **kwargs)
            except LabGone:
                if attempt == 2:
                    raise
                if ensure_lab is not None:
                    ensure_lab()

    return run


@contextlib.contextmanager
def upstream_unavailable_is_lab_gone() -> Iterator[None]:
    """Turn a gRPC UNAVAILABLE or a WebSocket handshake answered 502 into :class:`LabGone`."""
    import grpc
    from websockets.exceptions import InvalidStatus

    try:
        yield
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            raise LabGone(f"gRPC upstream unavailable: {exc.details()}") from exc
        raise
    except InvalidStatus as exc:
        if exc.response.status_code == 502:
            raise LabGone("WebSocket upstream gone (502)") from exc
        raise


class Example(ExampleProcess):
    """One example process (see ``example_process``), with a counting log search."""

    def __init__(self, script: str, env: Optional[dict[str, str]] = None,
                 args: tuple[str, ...] = ()) -> None:
        super().__init__(script, args, env)

    def wait_log(self, pattern: str, timeout: float = 10.0, count: int = 1) -> list[str]:
        """Wait until ``pattern`` matches the log ``count`` times; return the matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = rx.findall(self.log())
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not {count} times in the log of {self.script} "
                                     f"within {timeout}s:\n{self.log()}")
            time.sleep(0.05)


def running(script: str, port: int, env: Optional[dict[str, str]] = None,
            args: tuple[str, ...] = ()) -> "contextlib.AbstractContextManager[Example]":
    """Run ``examples/<script>`` (or the script at an absolute path) with ``args``
    until the block ends; ready once ``port`` accepts."""
    path = script if os.path.isabs(script) else f"examples/{script}"
    return run_example(Example, path, [port], env=env, args=args)


@dataclass
class Reply:
    """What curl got: status, headers and trailers (lower-case names), body, HTTP version
    and the verbose trace."""

    status: int
    headers: list[tuple[str, str]]
    body: str
    http_version: str
    trace: str
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name``, or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


def curl(url: str, *args: str, timeout: float = 10.0) -> Reply:
    """``curl -v <args> <url>`` over loopback; raises if curl itself fails.

    Headers come from ``-D`` (a file), so the body is exactly what was sent.
    """
    with tempfile.NamedTemporaryFile(prefix="propylon-tlsex-head-") as head:
        r = subprocess.run(
            ["curl", "-s", "-S", "-v", "--noproxy", "*", "--max-time", str(timeout),
             "-D", head.name, "-w", _MARK + "%{http_code} %{http_version}", *args, url],
            capture_output=True, timeout=timeout + 5)
        raw_head = Path(head.name).read_bytes().decode("latin-1")
    trace = r.stderr.decode(errors="replace")
    if r.returncode != 0:
        raise AssertionError(f"curl {url} failed ({r.returncode}): {trace}")
    body, _, tail = r.stdout.decode(errors="replace").rpartition(_MARK)
    code, version = tail.split()
    if code == "502":
        raise LabGone(f"502 from {url}: {body}")
    # -D holds every head (1xx first, the final one last) and then any trailers.
    heads, trailers = [], []
    for block in raw_head.strip().split("\r\n\r\n"):
        lines = block.split("\r\n")
        if lines[0].startswith("HTTP/"):
            heads.append(_fields(lines[1:]))
        else:
            trailers += _fields(lines)
    return Reply(int(code), heads[-1] if heads else [], body, version, trace, trailers)


def _fields(lines: list[str]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        k, _, v = line.partition(":")
        out.append((k.strip().lower(), v.strip()))
    return out


def curl_fails(url: str, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run curl expecting it to fail; return the finished process."""
    return subprocess.run(["curl", "-s", "-S", "--noproxy", "*", "--max-time", str(timeout),
                           *args, url], capture_output=True, text=True, timeout=timeout + 5)
