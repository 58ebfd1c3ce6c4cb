"""The lab's advanced upstream (127.0.0.1:18090) on its fixed port for the caching
lessons 43-47 (the examples hard-code it), checked before every test and started
here when nobody serves it (see ``support.FixedLab``). The tests use targets of
their own (a unique query) so the upstream's fetch counter (``X-Lab-Fetch``, ``#N``
in the body) counts only their requests."""

from __future__ import annotations

from typing import Iterator

import pytest

from propylon.lab import Lab
from support import FixedLab


@pytest.fixture(scope="session")
def _advanced(request: pytest.FixtureRequest) -> Iterator[FixedLab]:
    with FixedLab(request, ("advanced-http",)) as fixed:
        yield fixed


@pytest.fixture
def advanced(_advanced: FixedLab) -> Lab:
    return _advanced.ensure()
