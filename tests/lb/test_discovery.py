"""Discovery: static, file, DNS, push; atomic swaps; the background loop."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from propylon.errors import Error
from propylon.lb import (
    Backend,
    Backends,
    Consistent,
    DnsDiscovery,
    FileDiscovery,
    InMemoryDiscovery,
    LoadBalancer,
    PushDiscovery,
    RoundRobin,
    ServiceDiscovery,
    Static,
    TcpHealthCheck,
)
from propylon.shutdown import ShutdownWatch

from lb_support import TinyHttp


def rewrite(path, text: str) -> None:
    """Replace the file atomically (new inode), as editors and config tools do."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# --- static -----------------------------------------------------------------------
def test_static_from_iter_parses_and_resolves_localhost():
    s = Static.from_iter(["127.0.0.1:80", ("127.0.0.2:80", 4), "localhost:81"])
    assert isinstance(s, ServiceDiscovery)
    assert Backend("127.0.0.2:80", 4) in s.get()
    assert Backend("127.0.0.1:81") in s.get()
    with pytest.raises(ValueError, match="nope:80:x"):
        Static.from_iter(["nope:80:x"])


# --- file ---------------------------------------------------------------------------
def test_file_discovery_follows_rewrites_within_one_interval(tmp_path):
    path = tmp_path / "upstreams.txt"

    async def main():
        blue, green = await TinyHttp(body=b"BLUE").start(), await TinyHttp(body=b"GREEN").start()
        rewrite(path, f"# the pool\n127.0.0.1:{blue.port}\n")
        lb = LoadBalancer.from_backends(Backends(FileDiscovery(path)))
        lb.update_frequency = 0.05
        shutdown = ShutdownWatch()
        task = asyncio.ensure_future(lb.start(shutdown))
        await asyncio.sleep(0.02)
        assert lb.select() == blue.backend
        rewrite(path, f"127.0.0.1:{green.port} 2   # weighted\n\n127.0.0.1:{blue.port}\n")
        await asyncio.sleep(0.12)  # a bit more than one interval
        picks = [lb.select() for _ in range(6)]
        shutdown.trigger()
        await asyncio.wait_for(task, 1)
        await blue.stop()
        await green.stop()
        return picks, blue.backend, Backend(f"127.0.0.1:{green.port}", 2)

    picks, blue, green = asyncio.run(main())
    assert picks.count(green) == 4 and picks.count(blue) == 2


def test_file_discovery_keeps_last_good_set_on_bad_or_missing_file(tmp_path, lb_log):
    path = tmp_path / "upstreams.txt"

    async def main():
        d = FileDiscovery(path)
        with pytest.raises(Error):
            await d.discover()  # nothing good yet: the caller hears about it
        rewrite(path, "127.0.0.1:8001\n127.0.0.1:8002 3\n")
        good, _ = await d.discover()
        rewrite(path, "127.0.0.1:8001\nnot an address at all\n")
        after_bad = [(await d.discover())[0] for _ in range(3)]
        os.remove(path)
        after_missing = [(await d.discover())[0] for _ in range(3)]
        rewrite(path, "[::1]:8003\nunix:/tmp/x.sock\n")
        fixed, _ = await d.discover()
        return good, after_bad, after_missing, fixed

    good, after_bad, after_missing, fixed = asyncio.run(main())
    assert good == {Backend("127.0.0.1:8001"), Backend("127.0.0.1:8002", 3)}
    assert after_bad == [good] * 3 and after_missing == [good] * 3
    assert fixed == {Backend("[::1]:8003"), Backend("unix:/tmp/x.sock")}
    warnings = [r.getMessage() for r in lb_log.records if r.levelname == "WARNING"]
    # one warning per problem, naming the file (and the line)
    assert len(warnings) == 3, warnings
    assert str(path) in warnings[1] and "line 2" in warnings[1] and "not an address" in warnings[1]
    assert str(path) in warnings[2] and "keeping the last good set of 2 backends" in warnings[2]


def test_file_discovery_is_not_reparsed_when_unchanged(tmp_path):
    path = tmp_path / "upstreams.txt"
    rewrite(path, "127.0.0.1:8001\n")

    async def main():
        d = FileDiscovery(path)
        backends = Backends(d)
        changes = [await backends.update() for _ in range(3)]
        rewrite(path, "127.0.0.1:8001\n127.0.0.1:8002\n")
        changes.append(await backends.update())
        return changes

    assert asyncio.run(main()) == [True, False, False, True]


def test_file_discovery_resolves_names_without_blocking(tmp_path):
    path = tmp_path / "upstreams.txt"
    rewrite(path, "localhost:9001 2\n")
    backends, _ = asyncio.run(FileDiscovery(path).discover())
    assert Backend("127.0.0.1:9001", 2) in backends


# --- DNS ----------------------------------------------------------------------------
def test_dns_discovery_of_localhost():
    async def main():
        d = DnsDiscovery("localhost", 18080, weight=2, family=socket.AF_INET)
        first, _ = await d.discover()
        lb = LoadBalancer.from_backends(Backends(d))
        await lb.update()
        return first, lb.select()

    first, picked = asyncio.run(main())
    assert first == {Backend("127.0.0.1:18080", 2)}
    assert picked == Backend("127.0.0.1:18080", 2)


def test_dns_discovery_failure_keeps_last_good_set(lb_log):
    async def main():
        d = DnsDiscovery("localhost", 18080)
        good, _ = await d.discover()
        d.name = "no-such-host.invalid"
        again, _ = await d.discover()
        return good, again

    good, again = asyncio.run(main())
    assert Backend("127.0.0.1:18080") in good and again == good
    assert any("no-such-host.invalid" in r.getMessage() for r in lb_log.records)


# --- push ---------------------------------------------------------------------------
def test_push_discovery_swaps_atomically_and_rejects_bad_addresses():
    async def main():
        push = PushDiscovery(["127.0.0.1:18080"])
        assert PushDiscovery is InMemoryDiscovery
        lb = LoadBalancer.from_backends(Backends(push), Consistent)
        await lb.update()
        before = lb.select(b"/a")
        selector_before = lb._selector

        with pytest.raises(ValueError, match="127.0.0.1:99999"):
            push.set(["127.0.0.1:18081", "127.0.0.1:99999"])
        with pytest.raises(ValueError, match="blue.internal:80"):
            push.add("blue.internal:80")
        assert await lb.update() is False  # nothing was applied
        assert lb._selector is selector_before

        push.set(["127.0.0.1:18081", ("127.0.0.1:18082", 2)])
        # The swap happens inside update(); readers running between awaits see
        # either the old set or the new one, never a mix.
        assert lb.select(b"/a") == before
        assert await lb.update() is True
        after = {lb.select(b"/k%d" % i) for i in range(100)}
        push.remove("127.0.0.1:18081")
        push.set_enabled(("127.0.0.1:18082", 2), False)
        await lb.update()
        return before, after, lb.select(b"/a"), lb.backends.get_backend()

    before, after, drained, current = asyncio.run(main())
    assert before == Backend("127.0.0.1:18080")
    assert after == {Backend("127.0.0.1:18081"), Backend("127.0.0.1:18082", 2)}
    assert drained is None  # the only backend left is disabled
    assert current == (Backend("127.0.0.1:18082", 2),)


def test_health_survives_a_set_change_by_hash_key():
    async def main():
        push = PushDiscovery(["127.0.0.1:1", "127.0.0.1:2"])
        backends = Backends(push, TcpHealthCheck(connection_timeout=0.2))
        await backends.update()
        await backends.run_health_check(parallel=True)  # nothing listens: both unhealthy
        push.add("127.0.0.1:3")
        await backends.update()
        return {row.backend.port: row.healthy for row in backends.health_snapshot()}

    assert asyncio.run(main()) == {1: False, 2: False, 3: True}  # new backends start healthy


# --- background loop ------------------------------------------------------------------
def test_background_loop_exits_at_once_without_frequencies():
    async def main():
        lb = LoadBalancer.from_backends(Backends(Static.from_iter(["127.0.0.1:1"])))
        await asyncio.wait_for(lb.start(ShutdownWatch()), 1)
        return lb.select()

    assert asyncio.run(main()) == Backend("127.0.0.1:1")


def test_background_loop_stops_promptly_on_shutdown():
    async def main():
        frozen = await TinyHttp(freeze=True).start()
        lb = LoadBalancer.try_from_iter([frozen.backend], RoundRobin)
        from propylon.lb import HttpHealthCheck

        lb.set_health_check(HttpHealthCheck("localhost", read_timeout=5))
        lb.health_check_frequency = 10.0
        lb.update_frequency = 10.0
        shutdown = ShutdownWatch()
        task = asyncio.ensure_future(lb.start(shutdown))
        await asyncio.sleep(0.1)  # the first check now hangs on the frozen backend
        t0 = time.monotonic()
        shutdown.trigger()
        await asyncio.wait_for(task, 1)
        during_check = time.monotonic() - t0

        lb.set_health_check(None)
        shutdown = ShutdownWatch()
        task = asyncio.ensure_future(lb.start(shutdown))
        await asyncio.sleep(0.1)  # now sleeping for 10 s
        t0 = time.monotonic()
        shutdown.trigger()
        await asyncio.wait_for(task, 1)
        during_sleep = time.monotonic() - t0
        await frozen.stop()
        return during_check, during_sleep

    during_check, during_sleep = asyncio.run(main())
    assert during_check < 0.2 and during_sleep < 0.2


def test_background_loop_runs_health_checks_periodically():
    async def main():
        srv = await TinyHttp().start()
        lb = LoadBalancer.try_from_iter([srv.backend])
        lb.set_health_check(TcpHealthCheck(connection_timeout=0.2))
        lb.health_check_frequency = 0.05
        lb.parallel_health_check = True
        shutdown = ShutdownWatch()
        task = asyncio.ensure_future(lb.start(shutdown))
        await asyncio.sleep(0.03)
        up = lb.select()
        await srv.stop()
        await asyncio.sleep(0.15)
        down = lb.select()
        await srv.start(srv.port)
        await asyncio.sleep(0.15)
        back = lb.select()
        shutdown.trigger()
        await asyncio.wait_for(task, 1)
        await srv.stop()
        return up, down, back, srv.backend

    up, down, back, b = asyncio.run(main())
    assert (up, down, back) == (b, None, b)


def test_background_loop_reports_ready_after_the_first_update():
    async def main():
        push = PushDiscovery(["127.0.0.1:1"])
        lb = LoadBalancer.from_backends(Backends(push))
        seen = []
        await asyncio.wait_for(lb.start(ShutdownWatch(), ready=lambda: seen.append(lb.select())), 1)
        return seen

    assert asyncio.run(main()) == [Backend("127.0.0.1:1")]


def test_background_loop_survives_discovery_errors(tmp_path, lb_log):
    path = tmp_path / "missing.txt"

    async def main():
        lb = LoadBalancer.from_backends(Backends(FileDiscovery(path)))
        lb.update_frequency = 0.02
        shutdown = ShutdownWatch()
        task = asyncio.ensure_future(lb.start(shutdown))
        await asyncio.sleep(0.1)
        assert lb.select() is None
        rewrite(path, "127.0.0.1:7\n")
        await asyncio.sleep(0.1)
        picked = lb.select()
        shutdown.trigger()
        await asyncio.wait_for(task, 1)
        return picked

    assert asyncio.run(main()) == Backend("127.0.0.1:7")
    failures = [r for r in lb_log.records if "backend discovery failed" in r.getMessage()]
    assert len(failures) == 1  # repeated identical failures are logged once


def test_background_loop_stops_promptly_during_a_slow_discovery():
    class Slow:
        async def discover(self):
            await asyncio.sleep(10)
            return set(), {}

    async def main():
        lb = LoadBalancer.from_backends(Backends(Slow()))
        lb.update_frequency = 1.0
        shutdown = ShutdownWatch()
        task = asyncio.ensure_future(lb.start(shutdown))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        shutdown.trigger()
        await asyncio.wait_for(task, 1)
        return time.monotonic() - t0

    assert asyncio.run(main()) < 0.2
