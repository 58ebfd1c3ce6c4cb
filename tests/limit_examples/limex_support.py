"""Helpers of the traffic-control example tests (lessons 36–42).

``running(script, port, env=...)`` starts ``python <script>`` from the repository
root with ``PROPYLON_LOG=info``, waits until the port accepts connections and stops
the process group (SIGTERM, then SIGKILL) when the block ends, whatever happened.
``curl`` runs one request with a fresh curl process and returns status, headers and
body; ``hits`` asks blue how often a target reached it, so each test uses targets of
its own (a random query) and is not confused by other tests sharing the lab.

Blue may be served by another test run that stops it at any moment (the lab's ports
are fixed and shared). A 502 is never an expected answer in these tests, so ``curl``
raises :class:`BlueGone` for it, and ``@retry_if_blue_vanishes`` runs such a test
again (at most three times in all) once blue answers again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

from example_process import ExampleProcess, run_example, wait_port_free  # noqa: F401

BLUE_URL = "http://127.0.0.1:18080"
BLUE_BODY = "Response from BLUE"

#: Set by conftest: makes sure blue answers again (starting one if nobody serves it).
ensure_blue: Optional[Callable[[], None]] = None


class BlueGone(AssertionError):
    """Blue stopped answering during a test (a 502 through the proxy)."""


def retry_if_blue_vanishes(test: Callable) -> Callable:
    """Run ``test`` again, up to three times in all, when it ends with :class:`BlueGone`."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        for attempt in range(3):
            try:
                return test(*args, **kwargs)
            except BlueGone:
                if attempt == 2:
                    raise
                if ensure_blue is not None:
                    ensure_blue()

    return run


class Example(ExampleProcess):
    """One example process (see ``example_process``), with log counting."""

    def __init__(self, script: str, env: Optional[dict] = None) -> None:
        super().__init__(script, env=env)

    def count(self, pattern: str) -> int:
        """How many times ``pattern`` occurs in the log."""
        return len(re.findall(pattern, self.log()))

    def wait_log(self, pattern: str, timeout: float = 5.0, times: int = 1) -> None:
        """Wait until ``pattern`` occurs at least ``times`` times in the log."""
        deadline = time.monotonic() + timeout
        while self.count(pattern) < times:
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not {times}x in the log of {self.script} "
                                     f"within {timeout}s:\n{self.log()[-4000:]}")
            time.sleep(0.05)


def running(script: str, port: int, env: Optional[dict] = None) -> "contextlib.AbstractContextManager[Example]":
    """Run ``script`` for the duration of the block, ready once ``port`` accepts."""
    return run_example(Example, script, [port], env=env)


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
    r = subprocess.run(["curl", "-s", "-i", "--max-time", str(timeout), *args, url],
                       capture_output=True, timeout=timeout + 5)
    text = r.stdout.decode("latin-1")
    if not text.startswith("HTTP/"):
        return Reply(0, exit_code=r.returncode)
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    status = int(lines[0].split()[1])
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

