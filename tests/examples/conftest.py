"""The lab for the example tests, on its fixed ports (the examples hard-code them).

``city`` is the suite's ``lab`` fixture (propylon.lab's plugin) whenever that can
run, or a fixed-port lab this process already runs. When the fixed ports are held
by a lab another process runs (several test runs sharing one machine), each
member the examples need is checked before every test and started here if
nobody serves its address any more.
"""

from __future__ import annotations

import os
import socket
from typing import Iterator, Optional

import pytest

from propylon.lab import DEFAULT_CERTS_DIR, MEMBERS, Lab, LabStartError
from propylon.lab import process as lab_process

CERTS = os.environ.get("PROPYLON_LAB_CERTS", str(DEFAULT_CERTS_DIR))
#: The members the examples talk to.
NEEDED = ("blue", "green", "uds", "advanced-https", "forward-proxy", "blackhole")


def _served(name: str) -> bool:
    """Whether something listens on member ``name``'s fixed address.

    A refused connect means nobody; a timeout means a listener that does not
    accept (the blackhole does exactly that).
    """
    for ep in MEMBERS[name].endpoints:
        family = socket.AF_UNIX if ep.path is not None else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.3)
            try:
                s.connect(ep.path if ep.path is not None else (ep.host, ep.port))
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return False
    return True


def _fixed_lab_in_this_process() -> Optional[Lab]:
    for candidate in lab_process.open_labs():
        if candidate.port_mode == "fixed":
            return candidate
    return None


@pytest.fixture(scope="session")
def _base_lab(request: pytest.FixtureRequest) -> Optional[Lab]:
    """A fixed-port lab of this process, or None when another process holds the ports."""
    existing = _fixed_lab_in_this_process()
    if existing is not None:
        return existing
    try:
        return request.getfixturevalue("lab")
    except pytest.fail.Exception:
        return None


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
    for name in NEEDED:
        if _base_lab is not None and name in _base_lab.names:
            _base_lab.restore([name])
            continue
        spare = _spare_lab.members.get(name)
        if (spare is not None and spare.running) or _served(name):
            continue
        try:
            _spare_lab.start(name)
        except LabStartError as exc:
            if "in use" not in str(exc):  # lost a race with another run: theirs serves it
                pytest.fail(f"lab member {name} did not start: {exc}", pytrace=False)
    return _base_lab if _base_lab is not None else _spare_lab
