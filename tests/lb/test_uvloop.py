"""The same checks and discovery under uvloop, the loop Propylon runs on."""

from __future__ import annotations


import pytest

from propylon.errors import Error, ErrorType
from propylon.lb import Backend, DnsDiscovery, HttpHealthCheck, LoadBalancer, TcpHealthCheck

from lb_support import Blackhole, LagMeter, TinyHttp

uvloop = pytest.importorskip("uvloop")


def test_checks_and_dns_under_uvloop():
    hole = Blackhole()

    async def main():
        ok, frozen = await TinyHttp().start(), await TinyHttp(freeze=True).start()
        lb = LoadBalancer.try_from_iter([ok.backend, frozen.backend, hole.backend])
        lb.set_health_check(HttpHealthCheck("localhost", read_timeout=0.3, connection_timeout=0.3))
        lb.parallel_health_check = True
        with LagMeter() as lag:
            await lb.backends.run_health_check(parallel=True)
        errors = {row.backend: row.last_error for row in lb.health_snapshot()}
        await TcpHealthCheck().check(ok.backend)
        found, _ = await DnsDiscovery("localhost", 80).discover()
        picks = {lb.select() for _ in range(6)}
        await ok.stop()
        await frozen.stop()
        return errors, found, picks, lag.max_lag, ok.backend, frozen.backend

    try:
        errors, found, picks, lag, ok, frozen = uvloop.run(main())
    finally:
        hole.close()
    assert errors[ok] is None
    assert isinstance(errors[frozen], Error) and errors[frozen].etype == ErrorType.READ_TIMEDOUT
    assert errors[hole.backend].etype == ErrorType.CONNECT_TIMEDOUT
    assert Backend("127.0.0.1:80") in found
    assert picks == {ok}
    assert lag < 0.1
