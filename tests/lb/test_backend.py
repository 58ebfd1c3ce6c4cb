"""Backend addresses, identity and ordering."""

from __future__ import annotations

import time

import pytest

from propylon.lb import Backend, Consistent, FNVHash, LoadBalancer, Random, RoundRobin, TcpHealthCheck


def test_addresses_are_parsed_once():
    b = Backend("127.0.0.1:18080")
    assert (b.addr, b.host, b.port, b.weight, b.socket_addr) == ("127.0.0.1:18080", "127.0.0.1", 18080, 1, ("127.0.0.1", 18080))
    v6 = Backend("[::1]:80", 2)
    assert (v6.addr, v6.host, v6.port, v6.weight) == ("[::1]:80", "::1", 80, 2)
    assert Backend("[0:0::1]:80").addr == "[::1]:80"  # canonical form
    uds = Backend("unix:/tmp/app.sock")
    assert (uds.is_unix, uds.host, uds.port, uds.socket_addr) == (True, "/tmp/app.sock", None, "/tmp/app.sock")
    assert str(b) == "127.0.0.1:18080"


@pytest.mark.parametrize(
    "bad", ["127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "::1:80", "[::1]80", "blue:80", "unix:", "300.1.1.1:80", ""]
)
def test_bad_addresses_raise_value_error_naming_them(bad):
    with pytest.raises(ValueError) as e:
        Backend(bad)
    assert repr(bad) in str(e.value)


def test_bad_weight_is_rejected():
    for w in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            Backend("127.0.0.1:1", w)


def test_ext_is_ignored_by_equality_ordering_and_hash():
    a = Backend("127.0.0.1:80", ext={"zone": "a"})
    b = Backend("127.0.0.1:80", ext={"zone": "b"})
    assert a == b and hash(a) == hash(b) and a.hash_key == b.hash_key
    assert len({a, b}) == 1
    assert Backend("127.0.0.1:80", 2) != a  # weight is part of the identity
    assert Backend("127.0.0.1:80", 2).hash_key != a.hash_key


def test_hash_key_is_stable_across_processes():
    import subprocess
    import sys

    code = "from propylon.lb import Backend; print(Backend('127.0.0.1:80', 3).hash_key)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) == Backend("127.0.0.1:80", 3).hash_key


def test_ordering_is_numeric_v4_then_v6_then_unix():
    items = [
        Backend("unix:/a"),
        Backend("[::1]:1"),
        Backend("127.0.0.10:1"),
        Backend("127.0.0.9:2"),
        Backend("127.0.0.9:1", 2),
        Backend("127.0.0.9:1"),
    ]
    assert [str(b) for b in sorted(items)] == [
        "127.0.0.9:1",
        "127.0.0.9:1",
        "127.0.0.9:2",
        "127.0.0.10:1",
        "[::1]:1",
        "unix:/a",
    ]
    assert sorted(items)[0].weight == 1


@pytest.mark.parametrize("selection", [RoundRobin, Random, FNVHash, Consistent])
def test_select_is_cheap(selection):
    # A loose guard against accidental per-call work (it runs on every request).
    lb = LoadBalancer.try_from_iter([f"127.0.0.{i}:80" for i in range(1, 21)], selection=selection)
    lb.set_health_check(TcpHealthCheck())
    keys = [b"/user/%d" % (i % 500) for i in range(50_000)]
    t0 = time.perf_counter()
    for key in keys:
        lb.select(key, 256)
    per_call = (time.perf_counter() - t0) / len(keys)
    assert per_call < 20e-6, per_call
