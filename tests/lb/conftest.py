"""Fixtures of the load-balancing tests."""

import logging

import pytest


@pytest.fixture
def lb_log(caplog):
    """Capture the propylon.lb logger at INFO."""
    caplog.set_level(logging.INFO, logger="propylon.lb")
    return caplog
