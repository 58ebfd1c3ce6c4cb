"""The lab for the example tests, on its fixed ports (the examples hard-code them).

``city`` is the suite's ``lab`` fixture (propylon.lab's plugin) whenever that can
run, or a fixed-port lab this process already runs. When the fixed ports are held
by a lab another process runs (several test runs sharing one machine), each
member the examples need is checked before every test and started here if
nobody serves its address any more.
"""

from __future__ import annotations

import os
from typing import Iterator, Optional

import pytest

from fixed_lab import base_lab, ensure_members
from propylon.lab import DEFAULT_CERTS_DIR, Lab

CERTS = os.environ.get("PROPYLON_LAB_CERTS", str(DEFAULT_CERTS_DIR))
#: The members the examples talk to.
NEEDED = ("blue", "green", "uds", "advanced-https", "forward-proxy", "blackhole")


@pytest.fixture(scope="session")
def _base_lab(request: pytest.FixtureRequest) -> Optional[Lab]:
    """A fixed-port lab of this process, or None when another process holds the ports."""
    return base_lab(request)


@pytest.fixture(scope="session")
def _spare_lab() -> Iterator[Lab]:
    """Members started here to fill gaps; stopped at the end of the session."""
    spare = Lab(only=NEEDED, certs_dir=CERTS, ports="fixed")
    try:
        yield spare
    finally:
        spare.close()


@pytest.fixture
def city(_base_lab: Optional[Lab], _spare_lab: Lab) -> object:
    """Every member the examples use, answering on its fixed address."""
    return ensure_members(_base_lab, _spare_lab, NEEDED)
