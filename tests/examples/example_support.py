"""Running lesson examples as real processes and talking to them with real clients.

``running(script, port)`` starts ``python <script>`` from the repository root with
``PROPYLON_LOG=info``, waits until it accepts connections on ``port`` and stops it
(SIGTERM, then SIGKILL) when the ``with`` block ends, whatever happened inside.
``curl(...)`` runs the real curl and returns status, headers and body.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Optional

from example_process import ExampleProcess, run_example



class Example(ExampleProcess):
    """One lesson example process (see ``example_process``), with a log search."""

    def __init__(self, script: str, args: tuple[str, ...] = ()) -> None:
        super().__init__(script, args)

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


def running(script: str, *ports: int, args: tuple[str, ...] = ()) -> "contextlib.AbstractContextManager[Example]":
    """Run ``script`` until the block ends; ready once every port in ``ports`` accepts."""
    return run_example(Example, script, ports, args=args)


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
