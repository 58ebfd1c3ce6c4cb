"""Helpers of the traffic-control example tests (lessons 36–42).

Examples run with ``support.running``. ``curl`` runs one request with a fresh
curl process and returns status, headers and body; ``hits`` asks blue how often a target reached it, so each test uses targets of
its own (a random query) and is not confused by other tests sharing the lab.

Blue may be served by another test run that stops it at any moment (the lab's ports
are fixed and shared). A 502 is never an expected answer in these tests, so ``curl``
raises :class:`BlueGone` for it, and ``@retry_if_blue_vanishes`` runs such a test
again (at most three times in all) once blue answers again.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

from support import parse_head, retry_when, run_curl

BLUE_URL = "http://127.0.0.1:18080"
BLUE_BODY = "Response from BLUE"

#: Set by conftest: makes sure blue answers again (starting one if nobody serves it).
ensure_blue: Optional[Callable[[], None]] = None


class BlueGone(AssertionError):
    """Blue stopped answering during a test (a 502 through the proxy)."""


#: Runs a test again, up to three times in all, when it ends with :class:`BlueGone`.
retry_if_blue_vanishes = retry_when(BlueGone, lambda: ensure_blue)


@dataclass
class Reply:
    """What curl got: status (0 when curl failed), headers (lower-case names), body,
    curl's exit code."""

    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: str = ""
    exit_code: int = 0

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name``, or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


def curl(url: str, *args: str, timeout: float = 10.0) -> Reply:
    """One request with its own curl process (``curl -s -i <args> <url>``)."""
    r = run_curl("-i", *args, url, timeout=timeout)
    text = r.stdout.decode("latin-1")
    if not text.startswith("HTTP/"):
        return Reply(0, exit_code=r.returncode)
    head, _, body = text.partition("\r\n\r\n")
    status, fields = parse_head(head)
    headers: dict[str, list[str]] = {}
    for k, v in fields:
        headers.setdefault(k, []).append(v)
    if status == 502:
        raise BlueGone(f"502 for {url}: the upstream went away")
    return Reply(status, headers, body, r.returncode)


def unique_path(label: str) -> str:
    """A target nobody else asks blue for, so its hit count is this test's alone."""
    return f"/{label}?run={uuid.uuid4().hex[:12]}"


def hits(target: str) -> int:
    """How many requests for ``target`` reached blue."""
    query = urllib.parse.urlencode({"target": target})
    try:
        with urllib.request.urlopen(f"{BLUE_URL}/__lab/hits?{query}", timeout=5) as r:
            return int(json.loads(r.read())["hits"])
    except OSError as exc:
        raise BlueGone(f"blue did not answer: {exc}") from None

