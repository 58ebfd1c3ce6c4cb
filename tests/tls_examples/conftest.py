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
import socket
from typing import Iterator, Optional

import pytest

import tlsex_support
from propylon.lab import DEFAULT_CERTS_DIR, MEMBERS, Lab, LabStartError
from propylon.lab import process as lab_process

CERTS = os.environ.get("PROPYLON_LAB_CERTS", str(DEFAULT_CERTS_DIR))
#: The members these examples talk to.
NEEDED = ("blue", "advanced-https", "advanced-mtls", "advanced-h2c", "grpc", "websocket")


def _served(name: str) -> bool:
    """Whether something accepts connections on every address of member ``name``."""
    for ep in MEMBERS[name].endpoints:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            try:
                s.connect((ep.host, ep.port))
            except OSError:
                return False
    return True


def _fixed_lab_in_this_process() -> Optional[Lab]:
    for candidate in lab_process.open_labs():
        if candidate.port_mode == "fixed":
            return candidate
    return None


@pytest.fixture(scope="session")
def _tls_base_lab(request: pytest.FixtureRequest) -> Optional[Lab]:
    """A fixed-port lab of this process, or None when another process holds the ports."""
    existing = _fixed_lab_in_this_process()
    if existing is not None:
        return existing
    try:
        return request.getfixturevalue("lab")
    except pytest.fail.Exception:
        return None


@pytest.fixture(scope="session")
def _tls_spare_lab() -> Iterator[Lab]:
    """Members started here to fill gaps; stopped at the end of the session."""
    spare = Lab(only=NEEDED, certs_dir=CERTS, ports="fixed")
    try:
        yield spare
    finally:
        spare.close()


def _ensure(base: Optional[Lab], spare: Lab) -> Lab:
    """Start (or restore) every needed member that nobody serves; the lab in charge."""
    for name in NEEDED:
        if base is not None and name in base.names:
            base.restore([name])
            continue
        member = spare.members.get(name)
        if (member is not None and member.running) or _served(name):
            continue
        try:
            spare.start(name)
        except LabStartError as exc:
            if "in use" not in str(exc):  # lost a race with another run: theirs serves it
                pytest.fail(f"lab member {name} did not start: {exc}", pytrace=False)
    return base if base is not None else spare


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
