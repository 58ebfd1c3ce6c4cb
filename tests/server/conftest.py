"""Fixtures for the server tests: processes started here are always killed."""

from __future__ import annotations

import pytest

from support import Proc


@pytest.fixture
def procs(tmp_path):
    """``procs(args, env=None)`` starts a process whose log is in tmp_path; all are
    killed (with whatever they forked) when the test ends."""
    started: list[Proc] = []

    def start(args, env=None, name=None):
        p = Proc(args, tmp_path / f"{name or 'proc'}{len(started)}.log", env)
        started.append(p)
        return p

    try:
        yield start
    finally:
        for p in started:
            p.kill()
