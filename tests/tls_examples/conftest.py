"""The lab members the TLS / HTTP/2 / WebSocket / gRPC examples use, on their fixed
ports (the examples hard-code them, as the seed hard-codes its Docker lab).

``tls_lab`` is the suite's ``lab`` fixture (propylon.lab's plugin) when that can run,
or a fixed-port lab this process already runs. When the fixed ports are held by a
lab of another process (several test runs sharing one machine), each member the
examples need is checked before every test and started here if nobody serves its
address any more (see ``support.FixedLab``).
"""

from __future__ import annotations

from typing import Iterator

import pytest

import tlsex_support
from propylon.lab import Lab
from support import FixedLab

#: The members these examples talk to.
NEEDED = ("blue", "advanced-https", "advanced-mtls", "advanced-h2c", "grpc", "websocket")


@pytest.fixture(scope="session")
def _tls_city(request: pytest.FixtureRequest) -> Iterator[FixedLab]:
    with FixedLab(request, NEEDED) as fixed:
        yield fixed


@pytest.fixture
def tls_lab(_tls_city: FixedLab) -> Iterator[Lab]:
    """Every member these examples use, answering on its fixed address."""
    tlsex_support.ensure_lab = _tls_city.ensure
    try:
        yield _tls_city.ensure()
    finally:
        tlsex_support.ensure_lab = None
