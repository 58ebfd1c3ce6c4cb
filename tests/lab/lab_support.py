"""Helpers for the lab's own tests: curl runners and header lookups."""

from __future__ import annotations

import subprocess

from propylon.lab import Lab
from support import parse_head, run_curl


def curl(*args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run curl quietly (errors shown); stdout/stderr are text with CRLF kept."""
    return run_curl(*args, timeout=timeout, text=True)


def curl_head_body(*args: str) -> tuple[str, str]:
    """Run ``curl -i`` and split the output into (head, body); the last response wins."""
    out = curl("-i", *args)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    head, _, body = text.rpartition("\r\n\r\n")
    # with 100-continue or several responses, keep only the final head
    head = head.split("\r\n\r\n")[-1]
    return head, body


def header(head: str, name: str) -> str | None:
    """Value of header ``name`` in a curl ``-i`` head (case-insensitive)."""
    name = name.lower()
    return next((v for k, v in parse_head(head)[1] if k == name), None)


def hostport(lab: Lab, name: str, scheme: str | None = None) -> tuple[str, int]:
    """(host, port) of a TCP member."""
    addr = lab.address(name, scheme)
    assert isinstance(addr, tuple)
    return addr
