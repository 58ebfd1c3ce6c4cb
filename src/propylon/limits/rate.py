"""Per-key event rates over fixed, lazily flipped windows (Pingora's ``Rate``).

A :class:`Rate` keeps two count-min sketches (:class:`~propylon.limits.Estimator`),
"red" and "blue". One counts the **current** window, the other holds the **previous**
completed one. Windows are not aligned to a clock grid: the first call made at least
one ``interval`` after the last flip clears the previous sketch, swaps the two and
starts the new window at that moment. If two intervals or more went by without a call,
both sketches are cleared, because the previous window saw nothing either.

* ``observe(key, n)`` adds ``n`` to the current window and returns the key's estimate
  for that window: a **fixed-window** counter (lesson 36).
* ``rate(key)`` is events per second in the **previous completed window only**
  (``prev / interval``), without interpolation; 0 once two intervals have passed.
* ``rate_with(key, fn)`` hands the raw :class:`RateComponents` to ``fn``;
  :data:`PROPORTIONAL_RATE_ESTIMATE_CALC_FN` turns them into a sliding-window estimate
  and :meth:`Rate.sliding_rate` is a shortcut for it (lesson 37's smoothing).

Time is ``time.monotonic()``. Like :class:`Estimator`, a ``Rate`` is meant for one
thread (one event loop per worker); use the Redis variant to share a limit between
processes or machines.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, TypeVar, Union

from .estimator import Estimator

__all__ = ["Rate", "RateComponents", "PROPORTIONAL_RATE_ESTIMATE_CALC_FN", "Interval", "interval_seconds"]

Interval = Union[float, int, timedelta]
T = TypeVar("T")


def interval_seconds(interval: Interval) -> float:
    """Convert an interval given as seconds or a ``timedelta`` to positive seconds."""
    seconds = interval.total_seconds() if isinstance(interval, timedelta) else float(interval)
    if not seconds > 0:
        raise ValueError(f"interval must be positive, got {interval!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class RateComponents:
    """What :meth:`Rate.rate_with` passes to its function.

    Attributes:
        prev_samples: the key's count in the previous completed window.
        curr_samples: the key's count in the current window so far.
        interval: the window length in seconds.
        current_interval_fraction: how far into a window we are, from 0 to 1: the time
            since the last flip modulo the interval, divided by the interval.
    """

    prev_samples: int
    curr_samples: int
    interval: float
    current_interval_fraction: float


def _proportional(components: RateComponents) -> float:
    weighted = components.prev_samples * (1.0 - components.current_interval_fraction) + components.curr_samples
    return weighted / components.interval


PROPORTIONAL_RATE_ESTIMATE_CALC_FN: Callable[[RateComponents], float] = _proportional
"""Sliding-window rate in events per second.

``(prev × (1 − fraction) + curr) / interval``: the previous window counts in proportion
to the part of it that still overlaps a window of one interval ending now.
"""


class Rate:
    """Count events per key in the current window and report the previous window's rate.

    Args:
        interval: window length, in seconds (float) or as a ``timedelta``.
        hashes: rows of each of the two sketches. Default 4.
        slots: counters per row of each sketch. Default 1024.
        clock: the time source in seconds; default ``time.monotonic``.
    """

    __slots__ = ("interval", "_red", "_blue", "_red_is_current", "_last_reset", "_clock")

    def __init__(
        self,
        interval: Interval,
        *,
        hashes: int = 4,
        slots: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval_seconds(interval)
        self._red = Estimator(hashes, slots)
        self._blue = Estimator(hashes, slots)
        self._red_is_current = True
        self._clock = clock
        self._last_reset = clock()

    # --- window bookkeeping ------------------------------------------------------
    def _maybe_reset(self) -> float:
        """Flip windows if due; return the time since the last flip *before* this call."""
        now = self._clock()
        past = now - self._last_reset
        if past < self.interval:
            return past
        current, previous = (self._red, self._blue) if self._red_is_current else (self._blue, self._red)
        previous.reset()
        self._red_is_current = not self._red_is_current
        if past >= 2 * self.interval:
            # The window that just ended is stale too: nothing was observed in it.
            current.reset()
        self._last_reset = now
        return past

    def _current(self) -> Estimator:
        return self._red if self._red_is_current else self._blue

    def _previous(self) -> Estimator:
        return self._blue if self._red_is_current else self._red

    # --- public API ----------------------------------------------------------------
    def observe(self, key: Hashable, n: int = 1) -> int:
        """Add ``n`` events for ``key``; return its estimate for the current window."""
        self._maybe_reset()
        return self._current().incr(key, n)

    def rate(self, key: Hashable) -> float:
        """Events per second for ``key`` in the previous completed window.

        Only the previous window counts (no interpolation with the current one);
        0.0 when two intervals or more have passed since the last flip.
        """
        past = self._maybe_reset()
        if past >= 2 * self.interval:
            return 0.0
        return self._previous().get(key) / self.interval

    def rate_with(self, key: Hashable, fn: Callable[[RateComponents], T]) -> T:
        """Call ``fn`` with the key's :class:`RateComponents` and return its result.

        Right after a flip the current window is empty: ``(prev, 0)``; after two idle
        intervals both are gone: ``(0, 0)``.
        """
        past = self._maybe_reset()
        interval = self.interval
        if past >= 2 * interval:
            prev, curr = 0, 0
        elif past >= interval:
            prev, curr = self._previous().get(key), 0
        else:
            prev, curr = self._previous().get(key), self._current().get(key)
        fraction = (past % interval) / interval
        return fn(RateComponents(prev, curr, interval, fraction))

    def sliding_rate(self, key: Hashable) -> float:
        """Smoothed events per second: :data:`PROPORTIONAL_RATE_ESTIMATE_CALC_FN`.

        Unlike :meth:`rate`, this includes the current window, so a burst shows up at
        once, and the previous window fades out linearly as the current one advances.
        Same result as ``rate_with(key, PROPORTIONAL_RATE_ESTIMATE_CALC_FN)``, without
        building the components.
        """
        past = self._maybe_reset()
        interval = self.interval
        if past >= 2 * interval:
            return 0.0
        prev = self._previous().get(key)
        curr = 0 if past >= interval else self._current().get(key)
        fraction = (past % interval) / interval
        return (prev * (1.0 - fraction) + curr) / interval

    def __repr__(self) -> str:
        return f"Rate(interval={self.interval})"
