"""The ``gateway_run`` fixture: ``gateway_run(text, **values)`` starts a gateway on a
file made from ``text`` (see gateway_support.fill) and stops it when the test ends."""

from __future__ import annotations

from typing import Iterator

import pytest

from gateway_support import GatewayProcess, fill
from support import free_port


@pytest.fixture
def gateway_run(lab, tmp_path) -> Iterator:
    started: list[GatewayProcess] = []

    def run(text: str, **extra: object) -> GatewayProcess:
        port = free_port()
        conf = tmp_path / f"gateway-{len(started)}.yaml"
        conf.write_text(fill(text, lab, port, **extra))
        gw = GatewayProcess(conf, port, tmp_path / f"gateway-{len(started)}.log")
        started.append(gw)
        gw.wait_ready()
        return gw

    yield run
    for gw in started:
        gw.stop()
