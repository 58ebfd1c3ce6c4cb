"""The lab on its fixed ports, for tests of examples (which hard-code the lab's
addresses, as the seed hard-codes its Docker lab).

``base_lab(request)`` is a fixed-port lab this process already runs, else the
suite's ``lab`` fixture, else None (another process holds the ports: several
test runs sharing one machine). ``ensure_members(base, spare, names)`` makes each
named member answer: restored in ``base`` when it has it, otherwise started in
``spare`` unless somebody already serves its address.
"""

from __future__ import annotations

import socket
from typing import Iterable, Optional

import pytest

from propylon.lab import MEMBERS, Lab, LabStartError
from propylon.lab import process as lab_process


def served(name: str) -> bool:
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


def base_lab(request: pytest.FixtureRequest) -> Optional[Lab]:
    """A fixed-port lab of this process, or None when another process holds the ports."""
    for candidate in lab_process.open_labs():
        if candidate.port_mode == "fixed":
            return candidate
    try:
        return request.getfixturevalue("lab")
    except pytest.fail.Exception:
        return None


def ensure_members(base: Optional[Lab], spare: Lab, names: Iterable[str]) -> Lab:
    """Start (or restore) every named member that nobody serves; the lab in charge."""
    for name in names:
        if base is not None and name in base.names:
            base.restore([name])
            continue
        member = spare.members.get(name)
        if (member is not None and member.running) or served(name):
            continue
        try:
            spare.start(name)
        except LabStartError as exc:
            if "in use" not in str(exc):  # lost a race with another run: theirs serves it
                pytest.fail(f"lab member {name} did not start: {exc}", pytrace=False)
    return base if base is not None else spare
