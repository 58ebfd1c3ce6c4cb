"""Fixtures for the example tests: the lab on its fixed ports (the examples hard-code them).

The lab plugin's ``lab`` fixture is replaced here by one that, when the fixed ports
are already held by a lab another test run on this machine started, waits for them
and, if they stay taken, uses that running lab (it answers on the same addresses).
"""

from __future__ import annotations

import os
import time
import urllib.request
from typing import Iterator

import pytest

from propylon.lab import DEFAULT_CERTS_DIR, Lab, LabStartError

CERTS = os.environ.get("PROPYLON_LAB_CERTS", str(DEFAULT_CERTS_DIR))


def _blue_answers() -> bool:
    try:
        with urllib.request.urlopen("http://127.0.0.1:18080/", timeout=2) as r:
            return r.read() == b"Response from BLUE"
    except OSError:
        return False


class _RunningLab:
    """Stands for a lab started elsewhere: only its certificate directory is needed."""

    certs_dir = CERTS


@pytest.fixture(scope="session")
def lab() -> Iterator[object]:
    """Propylon City on its fixed ports, for the whole session."""
    deadline = time.monotonic() + 20
    while True:
        the_lab = Lab(certs_dir=CERTS, ports="fixed")
        try:
            the_lab.start()
        except LabStartError as exc:
            if "in use" not in str(exc):
                pytest.fail(f"the lab did not start: {exc}", pytrace=False)
            if time.monotonic() > deadline:
                if _blue_answers():
                    yield _RunningLab()
                    return
                pytest.fail(f"the lab's fixed ports are taken: {exc}", pytrace=False)
            time.sleep(1)
            continue
        try:
            yield the_lab
        finally:
            the_lab.close()
        return
