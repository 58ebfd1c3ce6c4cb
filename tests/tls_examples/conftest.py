"""The lab members the TLS / HTTP/2 / WebSocket / gRPC examples use, on their fixed
ports (the examples hard-code them, as the seed hard-codes its Docker lab).

``tls_lab`` is the suite's ``lab`` fixture (propylon.lab's plugin) when that can run,
or a fixed-port lab this process already runs. When the fixed ports are held by a
lab of another process (several test runs sharing one machine), each member the
examples need is checked before every test and started here if nobody serves its
address any more.
"""

from __future__ import annotations

import os
from typing import Iterator, Optional

import pytest

import tlsex_support
from fixed_lab import base_lab, ensure_members
from propylon.lab import DEFAULT_CERTS_DIR, Lab

CERTS = os.environ.get("PROPYLON_LAB_CERTS", str(DEFAULT_CERTS_DIR))
#: The members these examples talk to.
NEEDED = ("blue", "advanced-https", "advanced-mtls", "advanced-h2c", "grpc", "websocket")


@pytest.fixture(scope="session")
def _tls_base_lab(request: pytest.FixtureRequest) -> Optional[Lab]:
    """A fixed-port lab of this process, or None when another process holds the ports."""
    return base_lab(request)


@pytest.fixture(scope="session")
def _tls_spare_lab() -> Iterator[Lab]:
    """Members started here to fill gaps; stopped at the end of the session."""
    spare = Lab(only=NEEDED, certs_dir=CERTS, ports="fixed")
    try:
        yield spare
    finally:
        spare.close()


def _ensure(base: Optional[Lab], spare: Lab) -> Lab:
    return ensure_members(base, spare, NEEDED)


@pytest.fixture
def tls_lab(_tls_base_lab: Optional[Lab], _tls_spare_lab: Lab) -> Iterator[Lab]:
    """Every member these examples use, answering on its fixed address."""
    def ensure() -> None:
        _ensure(_tls_base_lab, _tls_spare_lab)

    tlsex_support.ensure_lab = ensure
    try:
        yield _ensure(_tls_base_lab, _tls_spare_lab)
    finally:
        tlsex_support.ensure_lab = None
