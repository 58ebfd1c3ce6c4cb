"""Count-min sketch: never under-counts, error bounded for many keys, fixed memory."""

import math
import tracemalloc

import pytest

from propylon.limits import Estimator


def test_incr_returns_post_add_estimate_and_get_reads_it():
    est = Estimator()
    assert est.incr("a") == 1
    assert est.incr("a", 4) == 5
    assert est.get("a") == 5
    assert est.get("never-seen") == 0


def test_decr_and_reset():
    est = Estimator()
    est.incr(b"k", 10)
    est.decr(b"k", 3)
    assert est.get(b"k") == 7
    est.reset()
    assert est.get(b"k") == 0
    assert est.incr(b"k") == 1


def test_key_types():
    est = Estimator(hashes=4, slots=1 << 16)
    est.incr("1", 1)
    est.incr(1, 3)
    est.incr(b"\xff\x00", 5)
    assert (est.get("1"), est.get(1), est.get(b"\xff\x00")) == (1, 3, 5)
    # Documented: Python hashes ASCII str and bytes alike, so they share counters.
    assert est.get(b"1") == 1


@pytest.mark.parametrize(
    "hashes, slots",
    [(4, 1024), (4, 8192), (1, 16), (8, 8192), (3, 1000), (7, 1 << 20)],
)
def test_shapes(hashes, slots):
    est = Estimator(hashes, slots)
    assert est.slots >= slots and est.slots & (est.slots - 1) == 0
    for i in range(200):
        est.incr(f"key-{i}", i)
    # Never under-counts, whatever the shape.
    assert all(est.get(f"key-{i}") >= i for i in range(200))


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        Estimator(0, 1024)
    with pytest.raises(ValueError):
        Estimator(4, 0)


@pytest.mark.parametrize("kind", ["ip", "int", "bytes"])
def test_error_bounded_with_many_keys(kind):
    # Count-min guarantee: estimate <= true + (e / slots) * total with probability
    # at least 1 - e**-hashes per key (about 98 % for 4 rows).
    est = Estimator(4, 1024)
    n_keys = 20_000
    if kind == "ip":
        keys = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(n_keys)]
    elif kind == "int":
        keys = list(range(n_keys))
    else:
        keys = [b"client-%d" % i for i in range(n_keys)]
    heavy = keys[:50]
    for k in keys:
        est.incr(k)
    for k in heavy:
        est.incr(k, 1000)
    total = n_keys + 1000 * len(heavy)
    bound = math.e / est.slots * total
    within = 0
    for i, k in enumerate(keys[:5000]):
        truth = 1001 if i < len(heavy) else 1
        estimate = est.get(k)
        assert estimate >= truth
        within += estimate - truth <= bound
    assert within / 5000 >= 0.97
    # And the heavy keys are told apart from the crowd.
    assert all(est.get(k) >= 1001 for k in heavy)
    assert sum(est.get(k) for k in keys[1000:2000]) / 1000 < 0.1 * 1001


def test_memory_does_not_grow_with_keys():
    est = Estimator()
    est.incr("warm-up")
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(100_000):
            est.incr(f"distinct-{i}")
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename") if stat.size_diff > 0)
    # 100k keys of ~15 bytes would be >1.5 MB if they were kept; the sketch keeps none.
    assert grown < 200_000
