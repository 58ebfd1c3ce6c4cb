"""The lab for the example tests, on its fixed ports (the examples hard-code them).

``city`` is the suite's ``lab`` fixture (propylon.lab's plugin) whenever that can
run, or a fixed-port lab this process already runs. When the fixed ports are held
by a lab another process runs (several test runs sharing one machine), each
member the examples need is checked before every test and started here if
nobody serves its address any more (see ``support.FixedLab``).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from propylon.lab import Lab
from support import FixedLab

#: The members the examples talk to.
NEEDED = ("blue", "green", "uds", "advanced-https", "forward-proxy", "blackhole")


@pytest.fixture(scope="session")
def _city(request: pytest.FixtureRequest) -> Iterator[FixedLab]:
    with FixedLab(request, NEEDED) as fixed:
        yield fixed


@pytest.fixture
def city(_city: FixedLab) -> Lab:
    """Every member the examples use, answering on its fixed address."""
    return _city.ensure()
