"""pytest fixtures that start Propylon City for the test suite.

* ``lab`` (session): the whole lab as child processes, started once per session and
  stopped at its end. Ports are the fixed ones of the endpoint map unless
  ``--lab-ports=ephemeral`` or ``PROPYLON_LAB_PORTS=ephemeral`` asks for free ports
  (for running several suites at once); tests should read addresses from the
  fixture (``lab.url("blue")``, ``lab.address("green")``) rather than hard-code them.
* ``lab_chaos`` (function): the same lab, for a test that stops or freezes members;
  afterwards every member is running and unfrozen again.

Certificates go to ``PROPYLON_LAB_CERTS`` (default /tmp/propylon-lab/certs).
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from .certs import DEFAULT_CERTS_DIR
from .process import Lab, LabStartError


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--lab-ports`` (fixed or ephemeral)."""
    parser.addoption("--lab-ports", choices=("fixed", "ephemeral"), default=None,
                     help="ports of the lab fixture: the endpoint map's (fixed) or free ones")


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The whole of Propylon City, running for the test session."""
    mode = request.config.getoption("--lab-ports") or os.environ.get("PROPYLON_LAB_PORTS", "fixed")
    certs = os.environ.get("PROPYLON_LAB_CERTS", str(DEFAULT_CERTS_DIR))
    the_lab = Lab(certs_dir=certs, ports=mode)  # type: ignore[arg-type]
    failure = None
    try:
        the_lab.start()
    except LabStartError as exc:
        failure = str(exc)
    if failure is not None:  # outside the except: no chained traceback, just the reason
        pytest.fail(f"the lab did not start: {failure}", pytrace=False)
    try:
        yield the_lab
    finally:
        the_lab.close()


@pytest.fixture
def lab_chaos(lab: Lab) -> Iterator[Lab]:
    """The session lab, for a test that stops or freezes members; restores them after."""
    lab.restore()
    try:
        yield lab
    finally:
        lab.restore()
