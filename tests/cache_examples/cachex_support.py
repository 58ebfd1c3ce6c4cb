"""curl against the caching lessons, and a unique target per test."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Optional

from support import parse_head, run_curl


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: str
    seconds: float

    def header(self, name: str) -> Optional[str]:
        return next((v for k, v in self.headers if k == name.lower()), None)


def curl(url: str, *args: str) -> Reply:
    t0 = time.monotonic()
    out = run_curl("-i", *args, url, text=True)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition("\r\n\r\n")
    status, fields = parse_head(head)
    return Reply(status, fields, body, time.monotonic() - t0)


def unique(path: str) -> str:
    """``path`` with a query of its own: the upstream counts its fetches apart."""
    return f"{path}?t={uuid.uuid4().hex[:12]}"
