"""Helpers of the TLS / HTTP/2 / WebSocket / gRPC example tests (lessons 7–24).

``running(script, port, env=...)`` runs ``examples/<script>`` (``support.running``).
``curl(...)`` runs the real curl and returns what it printed, its verbose trace and
the values asked for with ``-w``.

The lab's ports are fixed and may be served by another test run on the machine,
which can stop a member at any moment. A 502 (or gRPC UNAVAILABLE) is never an
expected answer here, so such an answer raises :class:`LabGone`, and
``@retry_if_lab_vanishes`` runs the test again (at most three times in all) once
every member answers again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import support
from support import LAB_CERTS, parse_head, retry_when, run_curl

CA = str(Path(LAB_CERTS) / "ca.crt")
#: Separates the body from the ``-w`` values in curl's output.
_MARK = "\n--propylon-write-out--\n"

#: Set by conftest: brings back every lab member these tests need.
ensure_lab: Optional[Callable[[], None]] = None


class LabGone(AssertionError):
    """An upstream of the lab stopped answering during a test (a 502 through the proxy)."""


#: Runs a test again, up to three times in all, when it ends with :class:`LabGone`.
retry_if_lab_vanishes = retry_when(LabGone, lambda: ensure_lab)


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


def running(script: str, port: int, env: Optional[dict[str, str]] = None,
            args: tuple[str, ...] = ()) -> "contextlib.AbstractContextManager[support.Example]":
    """Run ``examples/<script>`` (or the script at an absolute path) with ``args``
    until the block ends; ready once ``port`` accepts."""
    path = script if os.path.isabs(script) else f"examples/{script}"
    return support.running(path, port, env=env, args=args)


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
        r = run_curl("-v", "-D", head.name, "-w", _MARK + "%{http_code} %{http_version}", *args, url,
                     timeout=timeout)
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
        if block.startswith("HTTP/"):
            heads.append(parse_head(block)[1])
        else:  # trailers: fields without a status line
            trailers += parse_head("HTTP/1.1 0\r\n" + block)[1]
    return Reply(int(code), heads[-1] if heads else [], body, version, trace, trailers)


def curl_fails(url: str, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run curl expecting it to fail; return the finished process."""
    return run_curl(*args, url, timeout=timeout, text=True)
