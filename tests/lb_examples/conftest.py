"""The lab for the load-balancing example tests, on its fixed ports (the examples
hard-code blue 127.0.0.1:18080 and green 127.0.0.1:18081).

``lab`` prefers a lab this test process already runs on the fixed ports (another
test directory's session fixture), then starts blue and green itself, waiting a
while if the ports are held, and as a last resort uses a lab some other process
runs there. A lab started here is closed as soon as the last test of this
directory is done, so test directories that run later can take the ports.
``lab_chaos`` needs a lab it can stop and freeze, so it skips in the last case,
and restores blue and green before and after each test.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
import urllib.request
from typing import Iterator, Optional

import pytest

from propylon.lab import DEFAULT_CERTS_DIR, Lab, LabStartError
from propylon.lab import process as lab_process

CERTS = os.environ.get("PROPYLON_LAB_CERTS", str(DEFAULT_CERTS_DIR))
MEMBERS = ("blue", "green")
HERE = Path(__file__).resolve().parent
_OWN: list[Lab] = []  # the lab this directory started, if any


def _answers(port: int, text: bytes) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            return r.read() == text
    except OSError:
        return False


def _lab_in_this_process() -> Optional[Lab]:
    # Labs register themselves so they can be closed at exit; one on the fixed
    # ports with both members running is as good as our own.
    for candidate in list(lab_process._OPEN_LABS):
        members = [candidate.members.get(n) for n in MEMBERS]
        if candidate.port_mode == "fixed" and all(m is not None and m.running for m in members):
            return candidate
    return None


class ForeignLab:
    """Blue and green served by a lab another process started: usable, not controllable."""

    controllable = False


@pytest.fixture(scope="session")
def lab() -> Iterator[object]:
    """Blue and green on their fixed ports for the whole session."""
    existing = _lab_in_this_process()
    if existing is not None:
        yield existing
        return
    deadline = time.monotonic() + 30
    while True:
        own = Lab(only=MEMBERS, certs_dir=CERTS, ports="fixed")
        try:
            own.start()
        except LabStartError as exc:
            if "in use" not in str(exc):
                pytest.fail(f"the lab did not start: {exc}", pytrace=False)
            if time.monotonic() > deadline:
                if _answers(18080, b"Response from BLUE") and _answers(18081, b"Response from GREEN"):
                    yield ForeignLab()
                    return
                pytest.fail(f"the lab's fixed ports are taken: {exc}", pytrace=False)
            time.sleep(1)
            continue
        _OWN.append(own)
        try:
            yield own
        finally:
            _close_own()
        return


def _close_own() -> None:
    while _OWN:
        _OWN.pop().close()


@pytest.hookimpl(trylast=True)  # after the fixtures' teardown (lab_chaos restores first)
def pytest_runtest_teardown(item: pytest.Item, nextitem: Optional[pytest.Item]) -> None:
    """Close our own lab once the next test (if any) lives outside this directory."""
    if nextitem is None or HERE not in Path(str(nextitem.path)).resolve().parents:
        _close_own()


@pytest.fixture
def lab_chaos(lab) -> Iterator[Lab]:
    """The session lab for a test that stops or freezes blue or green; both are
    running and unfrozen before and after the test."""
    if not isinstance(lab, Lab):
        pytest.skip("blue and green belong to a lab another process runs; cannot stop or freeze them")
    lab.restore(MEMBERS)
    try:
        yield lab
    finally:
        lab.restore(MEMBERS)
