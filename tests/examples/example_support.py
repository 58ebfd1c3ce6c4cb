"""Talking to the lesson examples with the real curl (``support.running`` runs them).

``curl(...)`` returns status, headers and body of one request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from support import parse_head, run_curl


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
    """``curl -i <args> <url>`` over loopback; raises if curl itself fails."""
    t0 = time.monotonic()
    r = run_curl("-i", *args, url, timeout=timeout)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        raise AssertionError(f"curl {url} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return parse_reply(r.stdout, elapsed)


def parse_reply(raw: bytes, seconds: float = 0.0) -> Reply:
    """Split ``curl -i`` output into status, headers and body (skipping 1xx heads)."""
    while True:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status, headers = parse_head(head.decode("latin-1"))
        if 100 <= status < 200 and rest.startswith(b"HTTP/"):
            raw = rest
            continue
        return Reply(status, headers, rest, seconds)
