"""The rapid-reset guard (CVE-2023-44487) for one downstream HTTP/2 connection.

A client can open a stream and cancel it at once, over and over: each costs the
server a request's work and the client almost nothing, and the concurrency limit
never bites because every stream is gone a moment later. The guard counts streams
the client cancelled before their response was complete and trips when either

* more than ``max_resets`` of them fall within the last ``window`` seconds, or
* after the first ``min_streams`` streams, cancelled streams outnumber
  ``ratio`` × completed ones.

The connection then answers GOAWAY (ENHANCE_YOUR_CALM) and closes.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

__all__ = ["ResetGuard"]


class ResetGuard:
    """Counts client resets on one connection; ``on_reset()`` says when to give up."""

    __slots__ = ("max_resets", "window", "min_streams", "ratio", "_times", "_clock",
                 "resets", "completed")

    def __init__(self, max_resets: int = 200, window: float = 10.0, min_streams: int = 100,
                 ratio: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_resets = max_resets
        self.window = window
        self.min_streams = min_streams
        self.ratio = ratio
        self._times: deque[float] = deque()
        self._clock = clock
        self.resets = 0
        self.completed = 0

    def on_complete(self) -> None:
        """A stream got its whole response."""
        self.completed += 1

    def on_reset(self) -> bool:
        """A stream was cancelled by the client before its response ended.

        Returns True when the connection should be closed.
        """
        self.resets += 1
        now = self._clock()
        times = self._times
        times.append(now)
        horizon = now - self.window
        while times and times[0] < horizon:
            times.popleft()
        if len(times) > self.max_resets:
            return True
        total = self.resets + self.completed
        return total > self.min_streams and self.resets > self.ratio * self.completed
