"""Shared pieces of the lab's own tests.

Member tests run against a lab on ephemeral ports (``elab``), so they never clash
with another suite's lab on the fixed ports.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from propylon.lab import Lab, LabCerts, ensure_certs


@pytest.fixture(scope="session")
def lab_certs(tmp_path_factory: pytest.TempPathFactory) -> LabCerts:
    """A lab PKI of the session's own."""
    return ensure_certs(tmp_path_factory.mktemp("lab-certs"))


@pytest.fixture(scope="session")
def elab(lab_certs: LabCerts) -> Iterator[Lab]:
    """Every member, as child processes, on free ports."""
    with Lab(certs_dir=lab_certs.dir, ports="ephemeral") as the_lab:
        yield the_lab
