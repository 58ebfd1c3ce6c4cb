"""Selection algorithms: round robin, weights, FNV, Ketama, the unique iterator."""

from __future__ import annotations

import collections
import zlib

import pytest

from propylon.lb import Backend, Consistent, FNVHash, LoadBalancer, Random, RoundRobin


def addrs(n: int, base_port: int = 7000) -> list[str]:
    return [f"127.0.0.{i + 1}:{base_port + i}" for i in range(n)]


# --- round robin and weights ------------------------------------------------------
def test_round_robin_alternates():
    lb = LoadBalancer.try_from_iter(["127.0.0.1:18080", "127.0.0.1:18081"], selection=RoundRobin)
    picks = [lb.select(b"", 256).port for _ in range(6)]
    assert picks == [18080, 18081, 18080, 18081, 18080, 18081]


def test_weights_three_to_one_every_four_picks():
    lb = LoadBalancer.try_from_iter([("127.0.0.1:18080", 3), ("127.0.0.1:18081", 1)])
    picks = [lb.select(b"", 256).port for _ in range(400)]
    for i in range(0, 400, 4):
        window = collections.Counter(picks[i : i + 4])
        assert window == {18080: 3, 18081: 1}, (i, picks[i : i + 4])
    assert collections.Counter(picks) == {18080: 300, 18081: 100}


def test_weighted_layout_is_contiguous_in_set_order():
    # Pingora lays weights out A,A,A,B (not interleaved); the first picks show it.
    lb = LoadBalancer.try_from_iter([("127.0.0.2:1", 1), ("127.0.0.1:1", 3)])
    assert [str(lb.select()) for _ in range(4)] == ["127.0.0.1:1"] * 3 + ["127.0.0.2:1"]


def test_round_robin_fallback_skips_unready_and_consumes_ticks():
    a, b, c = Backend("127.0.0.1:1"), Backend("127.0.0.1:2"), Backend("127.0.0.1:3")
    lb = LoadBalancer.try_from_iter([a, b, c])
    lb.backends.set_enable(b, False)
    picks = [lb.select() for _ in range(4)]
    # tick 0 -> a; tick 1 -> b refused, tick 2 -> c; tick 3 -> a; tick 4 -> b refused, 5 -> c
    assert picks == [a, c, a, c]


def test_random_respects_weights():
    lb = LoadBalancer.try_from_iter([("127.0.0.1:1", 8), ("127.0.0.1:2", 1), ("127.0.0.1:3", 1)], selection=Random)
    counts = collections.Counter(lb.select().port for _ in range(10000))
    assert 7000 <= counts[1] <= 9000
    assert counts[2] > 500 and counts[3] > 500


# --- FNV ----------------------------------------------------------------------------
def reference_fnv1a(data: bytes) -> int:
    h = 14695981039346656037
    for byte in data:
        h ^= byte
        h = (h * 1099511628211) % (1 << 64)
    return h


def test_fnv_matches_reference_and_is_stable():
    backends = [Backend(a) for a in addrs(5)]
    lb = LoadBalancer.try_from_iter(backends, selection=FNVHash)
    ordered = sorted(backends)
    for key in [b"", b"a", b"/user/123", b"/user/456", bytes(range(256))]:
        expected = ordered[reference_fnv1a(key) % len(ordered)]
        assert lb.select(key) == expected
        assert all(lb.select(key) == expected for _ in range(20))


def test_fnv_fallbacks_walk_the_unweighted_list():
    heavy = Backend("127.0.0.1:1", 10)
    light = [Backend("127.0.0.2:1"), Backend("127.0.0.3:1")]
    sel = FNVHash.build(sorted([heavy, *light]))
    ordered = sorted([heavy, *light])
    it = sel.iter(b"test")
    first = next(it)
    weighted = [b for b in ordered for _ in range(b.weight)]
    index = reference_fnv1a(b"test")
    assert first == weighted[index % len(weighted)]
    for _ in range(10):
        index = reference_fnv1a(index.to_bytes(8, "little"))
        assert next(it) == ordered[index % len(ordered)]


# --- Ketama -------------------------------------------------------------------------
def reference_ring(backends: list[tuple[str, int, int]]) -> list[int]:
    """Point hashes computed from the formula, one crc32 over the whole input per point."""
    points = set()
    for ip, port, weight in backends:
        prev = 0
        for _ in range(160 * weight):
            prev = zlib.crc32(f"{ip}\0{port}".encode() + prev.to_bytes(4, "little"))
            points.add(prev)
    return sorted(points)


def test_ketama_point_layout_matches_the_nginx_formula():
    spec = [("127.0.0.1", 7777, 1), ("127.0.0.2", 7778, 2), ("127.0.0.3", 80, 3)]
    ring = Consistent.build(sorted(Backend(f"{ip}:{port}", w) for ip, port, w in spec))
    hashes = [h for h, _ in ring.points()]
    assert hashes == reference_ring(spec)
    # The first two points of 127.0.0.1:7777, derived by hand from the formula.
    p1 = zlib.crc32(b"127.0.0.1\x007777\x00\x00\x00\x00")
    p2 = zlib.crc32(b"127.0.0.1\x007777" + p1.to_bytes(4, "little"))
    owner = dict((h, b) for h, b in ring.points())
    assert owner[p1].addr == owner[p2].addr == "127.0.0.1:7777"


def test_ketama_lookup_is_first_point_at_or_after_key_hash():
    spec = [("127.0.0.1", 7777, 1), ("127.0.0.1", 7778, 1)]
    ring = Consistent.build(sorted(Backend(f"{ip}:{port}") for ip, port, _ in spec))
    points = ring.points()
    for key in [b"/some/path", b"/g", b"x" * 100, b""]:
        h = zlib.crc32(key)
        expected = next((b for ph, b in points if ph >= h), points[0][1])
        assert next(ring.iter(key)) == expected


def test_ketama_is_stable_for_a_key():
    lb = LoadBalancer.try_from_iter(addrs(4), selection=Consistent)
    for i in range(50):
        key = b"/user/%d" % i
        first = lb.select(key)
        assert all(lb.select(key) == first for _ in range(5))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_ketama_removing_a_backend_moves_only_its_keys(n):
    backends = [Backend(a) for a in addrs(n)]
    full = Consistent.build(sorted(backends))
    removed = backends[n // 2]
    smaller = Consistent.build(sorted(b for b in backends if b != removed))
    keys = [b"key-%d" % i for i in range(100_000)]
    before = [next(full.iter(k)) for k in keys]
    after = [next(smaller.iter(k)) for k in keys]
    moved = sum(1 for x, y in zip(before, after) if x != y)
    # Every moved key lived on the removed backend, and only those keys moved.
    assert all(x == removed for x, y in zip(before, after) if x != y)
    assert all(y != removed for y in after)
    assert moved == sum(1 for x in before if x == removed)
    assert moved <= 100_000 * (1 / n + 0.02)


def test_ketama_weight_scales_share():
    ring = Consistent.build(sorted([Backend("127.0.0.1:1", 3), Backend("127.0.0.2:1", 1)]))
    counts = collections.Counter(next(ring.iter(b"k%d" % i)).addr for i in range(40_000))
    share = counts["127.0.0.1:1"] / 40_000
    assert 0.68 < share < 0.82


def test_ketama_skips_unix_backends_and_walks_the_ring_on_fallback():
    a, b = Backend("127.0.0.1:1"), Backend("127.0.0.2:1")
    lb = LoadBalancer.try_from_iter([a, b, "unix:/tmp/never.sock"], selection=Consistent)
    assert len(lb.backends.get_backend()) == 3
    assert {lb.select(b"k%d" % i) for i in range(200)} == {a, b}
    lb.backends.set_enable(a, False)
    assert {lb.select(b"k%d" % i) for i in range(200)} == {b}


# --- unique iteration, select_with, empty sets ----------------------------------------
def test_max_iterations_counts_duplicates_and_bounds_the_search():
    lb = LoadBalancer.try_from_iter(addrs(3), selection=Consistent)
    seen = []

    def refuse_all(backend, ready):
        seen.append(backend)
        return False

    assert lb.select_with(b"k", 1000, refuse_all) is None
    assert sorted(seen) == sorted(lb.backends.get_backend())  # each offered once
    seen.clear()
    assert lb.select_with(b"k", 1, refuse_all) is None
    assert len(seen) == 1
    # Ketama's ring repeats a backend in neighbouring points: with max_iterations=2
    # the second pull may be a duplicate, in which case only one backend is offered.
    seen.clear()
    lb.select_with(b"k", 2, refuse_all)
    assert 1 <= len(seen) <= 2
    assert lb.select(b"k", 0) is None


def test_select_with_can_ignore_health():
    a = Backend("127.0.0.1:1")
    lb = LoadBalancer.try_from_iter([a])
    lb.backends.set_enable(a, False)
    assert lb.select() is None
    assert lb.select_with(b"", 8, lambda b, ready: True) == a
    assert lb.select_with(b"", 8, lambda b, ready: ready) is None


def test_empty_balancer_selects_nothing():
    for selection in (RoundRobin, Random, FNVHash, Consistent):
        lb = LoadBalancer.try_from_iter([], selection=selection)
        assert lb.select(b"k", 256) is None

