"""Built-in metrics against real traffic: per-upstream counts, pool reuse, a dead
backend in errors and health, and two workers summed into one scrape."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from metrics_support import h2load, observed, total, wait_for

from propylon import HttpPeer, ProxyHttp
from propylon.limits import Rate
from propylon.metrics import Observability


def addr(lab, name: str) -> str:
    host, port = lab.address(name)
    return f"{host}:{port}"


def test_counts_per_upstream_and_pool_reuse(lab):
    blue, green = addr(lab, "blue"), addr(lab, "green")
    with observed([blue, green]) as p:
        h2load(p.url + "/", 200, clients=2)
        m = p.scrape()
        assert total(m, "propylon_requests_total") == 200
        for up in (blue, green):
            assert total(m, "propylon_requests_total", upstream=up, status_class="2xx",
                         method="GET", service="web") == 100
            assert total(m, "propylon_request_duration_seconds_count", upstream=up) == 100
            assert total(m, "propylon_upstream_response_header_duration_seconds_count", upstream=up) == 100
        opened = total(m, "propylon_upstream_connections_opened_total")
        reused = total(m, "propylon_upstream_connections_reused_total")
        assert opened + reused == 200
        assert 2 <= opened <= 4 and reused >= 196  # two client connections, pooled upstream ones
        assert total(m, "propylon_upstream_connect_duration_seconds_count") == opened
        assert total(m, "propylon_upstream_connections", state="idle") >= 2
        assert total(m, "propylon_upstream_connections", state="in_use") == 0
        assert total(m, "propylon_response_body_bytes_total") == 100 * (len("Response from BLUE") + len("Response from GREEN"))
        assert total(m, "propylon_errors_total") == 0
        for up in (blue, green):
            assert total(m, "propylon_backend_healthy", backend=up) == 1


def test_open_downstream_connections_are_counted(lab):
    with observed([addr(lab, "blue")]) as p:
        held = [socket.create_connection(("127.0.0.1", p.port)) for _ in range(3)]
        try:
            wait_for(lambda: total(p.scrape(), "propylon_downstream_connections") == 3, 5,
                     "three open client connections")
        finally:
            for s in held:
                s.close()
        wait_for(lambda: total(p.scrape(), "propylon_downstream_connections") == 0, 5,
                 "no open client connection")


def test_killed_backend_shows_in_errors_and_health(lab_chaos):
    lab = lab_chaos
    blue, green = addr(lab, "blue"), addr(lab, "green")
    # Three failed probes (0.2 s apart) before green is marked down: the requests
    # sent right after it dies still try it, fail to connect and are retried on blue.
    with observed([blue, green], "--failures", "3") as p:
        h2load(p.url + "/", 10, clients=1)
        lab.stop("green")
        h2load(p.url + "/", 10, clients=1)  # every client still gets a 200
        wait_for(lambda: total(p.scrape(), "propylon_backend_healthy", backend=green) == 0, 10,
                 "green marked unhealthy")
        m = p.scrape()
        assert total(m, "propylon_backend_healthy", backend=blue) == 1
        refused = total(m, "propylon_errors_total", type="ConnectRefused", source="upstream")
        assert refused >= 1
        assert total(m, "propylon_upstream_retries_total", upstream=green) == refused
        assert total(m, "propylon_requests_total", status_class="2xx") == 20
        # Once green is out of the rotation, no new error.
        h2load(p.url + "/", 10, clients=1)
        assert total(p.scrape(), "propylon_errors_total") == refused


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return sorted(int(x) for x in out.stdout.split())


def test_two_workers_one_total(lab, tmp_path):
    conf = tmp_path / "conf.yaml"
    conf.write_text("version: 1\nthreads: 2\nwork_stealing: false\n")
    values = tmp_path / "metrics"
    with observed([addr(lab, "blue")], "--conf", str(conf), "--metrics-dir", str(values)) as p:
        wait_for(lambda: len(worker_pids(p.popen.pid)) == 2, 10, "two workers")
        h2load(p.url + "/", 1000, clients=8)
        wait_for(lambda: total(p.scrape(), "propylon_requests_total") == 1000, 5, "a total of 1000")
        # Both workers took part: each one's own file counts some of the requests.
        per_worker = [sum(v for _, v in json.loads(f.read_text())["counters"]["propylon_requests"])
                      for f in values.glob("*.json")]
        assert len(per_worker) == 2 and all(n > 0 for n in per_worker) and sum(per_worker) == 1000, per_worker
        # Each scrape is a new connection, answered by either worker: all agree.
        for _ in range(10):
            assert total(p.scrape(), "propylon_requests_total") == 1000

        # A worker killed and restarted: its counts stay in the sum.
        victim = worker_pids(p.popen.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(worker_pids(p.popen.pid)) == 2 and victim not in worker_pids(p.popen.pid),
                 10, "the worker restarted")
        for _ in range(10):
            assert total(p.scrape(), "propylon_requests_total") == 1000  # not backwards
        h2load(p.url + "/", 100, clients=4)
        wait_for(lambda: total(p.scrape(), "propylon_requests_total") == 1100, 5, "later traffic added")


def test_limiter_decisions_are_counted(lab, serve):
    registry = CollectorRegistry()
    obs = Observability(service="limited", registry=registry)

    class Limited(ProxyHttp):
        """Three requests per client per minute, as lesson 36 does."""

        rate = Rate(60.0)

        async def request_filter(self, session, ctx):
            allowed = self.rate.observe(session.client_ip) <= 3
            obs.limiter_decision("per_client", allowed)
            if not allowed:
                await session.respond_error(429)
                return True
            return False

        async def upstream_peer(self, session, ctx):
            return HttpPeer(lab.address("blue"), tls=False, sni="")

    url = serve(Limited(), obs)
    codes = [subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url + "/"],
                            capture_output=True, text=True, timeout=10).stdout for _ in range(5)]
    assert codes == ["200"] * 3 + ["429"] * 2
    m = {(s.name, tuple(sorted(s.labels.items()))): s.value
         for fam in text_string_to_metric_families(generate_latest(registry).decode())
         for s in fam.samples}
    assert total(m, "propylon_limiter_decisions_total", limiter="per_client", decision="allowed") == 3
    assert total(m, "propylon_limiter_decisions_total", limiter="per_client", decision="rejected") == 2
    assert total(m, "propylon_requests_total", status_class="4xx", upstream="none") == 2
    assert total(m, "propylon_requests_total", status_class="2xx") == 3


def test_a_second_observability_in_one_registry_is_refused():
    registry = CollectorRegistry()
    first = Observability(registry=registry)
    with pytest.raises(ValueError, match="for_service"):
        Observability(registry=registry)
    other = first.for_service("admin")
    assert other.metrics is first.metrics and other.service == "admin"
