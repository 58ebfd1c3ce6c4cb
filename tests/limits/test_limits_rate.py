"""Rate: Pingora's window semantics, checked in real time and with a stepped clock."""

import time
from datetime import timedelta

import pytest

from propylon.limits import PROPORTIONAL_RATE_ESTIMATE_CALC_FN, Rate, RateComponents

IV = 0.2  # seconds: short windows keep these tests fast


class SteppedClock:
    """A clock the test moves by hand, for exact window boundaries."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_observe_counts_the_current_window_real_time():
    rate = Rate(IV)
    assert [rate.observe("ip") for _ in range(5)] == [1, 2, 3, 4, 5]
    assert rate.observe("other", 3) == 3
    # No window has completed yet.
    assert rate.rate("ip") == 0.0
    time.sleep(IV * 1.1)
    # The first call after one interval flips: the window restarts.
    assert rate.observe("ip") == 1


def test_rate_is_previous_window_only_real_time():
    rate = Rate(IV)
    for _ in range(4):
        rate.observe("ip")
    time.sleep(IV * 1.1)
    assert rate.rate("ip") == pytest.approx(4 / IV)
    # Events in the current window do not change rate(): no interpolation.
    for _ in range(10):
        rate.observe("ip")
    assert rate.rate("ip") == pytest.approx(4 / IV)
    assert rate.rate("never") == 0.0


def test_rate_is_zero_after_two_intervals_real_time():
    rate = Rate(IV)
    rate.observe("ip", 7)
    time.sleep(IV * 2.1)
    assert rate.rate("ip") == 0.0
    assert rate.observe("ip") == 1
    time.sleep(IV * 1.1)
    assert rate.rate("ip") == pytest.approx(1 / IV)


def test_interval_accepts_timedelta_and_rejects_nonpositive():
    assert Rate(timedelta(milliseconds=250)).interval == 0.25
    assert Rate(2).interval == 2.0
    for bad in (0, -1, timedelta(0)):
        with pytest.raises(ValueError):
            Rate(bad)


def test_windows_flip_lazily_and_are_not_grid_aligned():
    clock = SteppedClock()
    rate = Rate(1.0, clock=clock)
    rate.observe("k")
    clock.now += 1.5  # first call after 1.5 s: the new window starts *now*
    assert rate.observe("k") == 1
    clock.now += 0.7  # 2.2 s after creation: a grid would have flipped at 2.0
    assert rate.observe("k") == 2
    assert rate.rate("k") == 1.0  # previous window still the one with 1 event
    clock.now += 0.3  # 1.0 s after the flip: flips now
    assert rate.observe("k") == 1
    assert rate.rate("k") == 2.0


def test_flip_at_exactly_one_interval():
    clock = SteppedClock()
    rate = Rate(1.0, clock=clock)
    rate.observe("k", 3)
    clock.now += 0.999
    assert rate.observe("k") == 4
    clock.now += 0.001
    assert rate.observe("k") == 1
    assert rate.rate("k") == 4.0


def test_two_idle_intervals_clear_both_windows():
    clock = SteppedClock()
    rate = Rate(1.0, clock=clock)
    rate.observe("k", 5)
    clock.now += 1.0
    rate.observe("k", 2)  # flips: prev = 5, curr = 2
    clock.now += 2.0
    assert rate.rate("k") == 0.0  # >= 2 intervals since the last flip
    clock.now += 1.0
    # That call flipped and cleared both; the window with 2 events is gone too.
    assert rate.rate("k") == 0.0


def test_rate_with_components():
    clock = SteppedClock()
    rate = Rate(1.0, clock=clock)
    rate.observe("k", 6)
    clock.now += 0.25
    c = rate.rate_with("k", lambda comp: comp)
    assert c == RateComponents(0, 6, 1.0, pytest.approx(0.25))
    clock.now += 0.75  # this call flips: (prev, 0)
    c = rate.rate_with("k", lambda comp: comp)
    assert (c.prev_samples, c.curr_samples) == (6, 0)
    rate.observe("k", 2)
    clock.now += 0.5
    c = rate.rate_with("k", lambda comp: comp)
    assert (c.prev_samples, c.curr_samples, c.current_interval_fraction) == (6, 2, pytest.approx(0.5))
    clock.now += 2.0
    c = rate.rate_with("k", lambda comp: comp)
    assert (c.prev_samples, c.curr_samples) == (0, 0)


def test_proportional_estimate_and_sliding_rate():
    comp = RateComponents(prev_samples=10, curr_samples=4, interval=2.0, current_interval_fraction=0.25)
    assert PROPORTIONAL_RATE_ESTIMATE_CALC_FN(comp) == pytest.approx((10 * 0.75 + 4) / 2.0)

    clock = SteppedClock()
    rate = Rate(1.0, clock=clock)
    rate.observe("k", 10)
    clock.now += 1.0
    rate.observe("k", 4)  # flips; prev = 10, curr = 4
    clock.now += 0.25
    assert rate.sliding_rate("k") == pytest.approx(10 * 0.75 + 4)
    clock.now += 0.5
    assert rate.sliding_rate("k") == pytest.approx(10 * 0.25 + 4)
    assert rate.sliding_rate("k") == pytest.approx(rate.rate_with("k", PROPORTIONAL_RATE_ESTIMATE_CALC_FN))
    clock.now += 0.75  # flips: prev = 4, curr = 0, fraction measured from the old flip
    assert rate.sliding_rate("k") == pytest.approx(4 * (1 - 0.5))
    clock.now += 5
    assert rate.sliding_rate("k") == 0.0


def test_sliding_rate_smooths_a_steady_stream_real_time():
    # Lesson 37: a steady stream (about 5 events per 0.2 s interval) gives a sliding
    # rate close to the stream's real rate, with no jumps at window flips.
    rate = Rate(IV)
    start = time.monotonic()
    seen = []
    while time.monotonic() - start < IV * 4:
        rate.observe("ip")
        seen.append(rate.sliding_rate("ip"))
        time.sleep(IV / 5)
    actual = len(seen) / (time.monotonic() - start)
    steady = seen[len(seen) // 2 :]
    assert all(0.5 * actual <= r <= 1.5 * actual for r in steady), (actual, steady)
