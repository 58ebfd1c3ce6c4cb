"""Helpers of the load-balancing example tests: run an example, talk to it with curl.

``running(script, port, ...)`` runs an example (``support.running``) whose failure
reports leave out the lines every request logs. ``curl_bodies`` sends many requests through one curl
process (one keep-alive connection); ``Traffic`` sends one request every
``interval`` seconds from a thread, the way the lessons' ``while true; curl; sleep``
loops do, and records what each one got.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass
from typing import Optional

import support
from support import parse_head, run_curl

BLUE = "Response from BLUE"
GREEN = "Response from GREEN"

# Log lines every request writes; left out of failure reports so the rest shows.
_PER_REQUEST = re.compile(r"Selected upstream|Routed to|upstream peer is|hashed to|stuck to|"
                          r"session cookie|Fail to proxy|is healthy\. Routing")


class LbExample(support.Example):
    """An example whose log, in failure reports, leaves out the per-request lines."""

    def log_summary(self, lines: int = 40) -> str:
        """The last ``lines`` log lines, leaving out the per-request ones."""
        kept = [line for line in self.log().splitlines() if not _PER_REQUEST.search(line)]
        return "\n".join(kept[-lines:])

    describe_log = log_summary


def running(script: str, *ports: int, env: Optional[dict] = None) -> "contextlib.AbstractContextManager[LbExample]":
    """Run ``script`` until the block ends; ready once every port in ``ports`` accepts."""
    return support.running(script, *ports, env=env, cls=LbExample)


@dataclass
class Reply:
    """What curl got for one request: status (0 if curl failed) and body."""

    status: int
    body: str
    at: float  # time.monotonic() when the request was sent


_SEP = "\n--propylon-status:"


def curl_bodies(urls: list[str], *args: str, timeout: float = 30.0) -> list[Reply]:
    """Fetch ``urls`` in order with one curl process; one :class:`Reply` per URL."""
    t0 = time.monotonic()
    r = run_curl("-w", _SEP + "%{http_code}\n", *args, *urls, timeout=timeout)
    text = r.stdout.decode(errors="replace")
    # After the first body, each part is "<status>\n<body of the next request>".
    out: list[Reply] = []
    parts = text.split(_SEP)
    body = parts[0]
    for part in parts[1:]:
        status_text, _, rest = part.partition("\n")
        out.append(Reply(int(status_text or 0), body, t0))
        body = rest
    if len(out) != len(urls):
        raise AssertionError(f"curl returned {len(out)} of {len(urls)} replies "
                             f"(exit {r.returncode}): {r.stderr.decode(errors='replace')}")
    return out


def curl_one(url: str, *args: str, timeout: float = 5.0) -> Reply:
    """One request with its own curl process; status 0 when curl itself failed."""
    t0 = time.monotonic()
    r = run_curl("-w", _SEP + "%{http_code}", *args, url, timeout=timeout)
    body, _, status = r.stdout.decode(errors="replace").rpartition(_SEP)
    return Reply(int(status) if status.isdigit() else 0, body, t0)


def curl_head(url: str, *args: str, timeout: float = 5.0) -> tuple[int, dict[str, list[str]], str]:
    """``curl -i``: status, headers (lower-case names, all values) and body."""
    r = run_curl("-i", *args, url, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"curl {url} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    head, _, body = r.stdout.decode("latin-1").partition("\r\n\r\n")
    status, fields = parse_head(head)
    headers: dict[str, list[str]] = {}
    for k, v in fields:
        headers.setdefault(k, []).append(v)
    return status, headers, body


class Traffic:
    """A thread that sends ``GET url`` every ``interval`` seconds with a fresh curl.

    Use as a context manager; :attr:`replies` grows as answers arrive. ``since(t)``
    gives the replies to requests sent at or after monotonic time ``t``.
    """

    def __init__(self, url: str, interval: float = 0.1, timeout: float = 3.0) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.replies: list[Reply] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            reply = curl_one(self.url, timeout=self.timeout)
            with self._lock:
                self.replies.append(reply)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 10)

    def since(self, t: float) -> list[Reply]:
        """Replies to the requests sent at or after ``t``."""
        with self._lock:
            return [r for r in self.replies if r.at >= t]

    def wait_for(self, predicate, timeout: float, min_count: int = 1, since: float = 0.0) -> float:
        """Wait until ``predicate(reply)`` holds for ``min_count`` replies in a row
        (among requests sent at or after ``since``); return the send time of the
        first of them."""
        deadline = time.monotonic() + timeout
        while True:
            replies = self.since(since)
            run = 0
            for i, r in enumerate(replies):
                run = run + 1 if predicate(r) else 0
                if run >= min_count:
                    return replies[i - min_count + 1].at
            if time.monotonic() > deadline:
                tail = [(round(r.at, 2), r.status, r.body) for r in replies[-15:]]
                raise AssertionError(f"traffic did not settle within {timeout}s; last replies: {tail}")
            time.sleep(0.05)
