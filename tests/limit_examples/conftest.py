"""Blue on its fixed port for the traffic-control example tests (the examples
hard-code 127.0.0.1:18080).

Other test runs on the machine may hold the lab's fixed ports and stop or freeze
their members. So ``lab`` checks before every test that blue answers, and when
nobody serves its port starts a blue of its own (kept for the session). A blue
served by someone else will do: these tests only send requests and read the hit
counts of targets of their own.
"""

from __future__ import annotations

import os
import time
import urllib.request
from typing import Iterator, Optional

import pytest

import limex_support

from propylon.lab import DEFAULT_CERTS_DIR, Lab, LabStartError
from propylon.lab import process as lab_process

CERTS = os.environ.get("PROPYLON_LAB_CERTS", str(DEFAULT_CERTS_DIR))


def _blue_answers() -> bool:
    try:
        with urllib.request.urlopen("http://127.0.0.1:18080/", timeout=1) as r:
            return r.read() == b"Response from BLUE"
    except OSError:
        return False


def _lab_in_this_process() -> Optional[Lab]:
    for candidate in lab_process.open_labs():
        blue = candidate.members.get("blue")
        if candidate.port_mode == "fixed" and blue is not None:
            return candidate
    return None


@pytest.fixture(scope="session")
def _own_blue() -> Iterator[Lab]:
    """A lab holding only blue, started on demand; closed at the end of the session."""
    own = Lab(only=("blue",), certs_dir=CERTS, ports="fixed")
    try:
        yield own
    finally:
        own.close()


def _ensure_blue(own: Lab) -> Optional[Lab]:
    """Wait until blue answers (starting it in ``own`` if nobody serves its port);
    return the lab running it, or None when another process serves it."""
    mine = _lab_in_this_process() or own
    deadline = time.monotonic() + 30
    while True:
        blue = mine.members.get("blue")
        if blue is not None and blue.running:
            mine.restore(["blue"])
            return mine
        if _blue_answers():
            return None
        try:
            own.start("blue")
            return own
        except LabStartError as exc:
            # Another run holds the port: its blue may be stopped or frozen for a
            # moment (chaos tests); wait for it to answer or to let go of the port.
            if "in use" not in str(exc) or time.monotonic() > deadline:
                pytest.fail(f"blue is not available: {exc}", pytrace=False)
        time.sleep(0.5)


@pytest.fixture
def lab(_own_blue: Lab) -> Iterator[Optional[Lab]]:
    """Blue answering on 127.0.0.1:18080; the lab that runs it, or None if another
    process serves it."""
    limex_support.ensure_blue = lambda: _ensure_blue(_own_blue)
    try:
        yield _ensure_blue(_own_blue)
    finally:
        limex_support.ensure_blue = None
