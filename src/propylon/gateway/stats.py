"""Per-route request counters and latency histograms, and the recent proxy errors.

Kept in-process and cheaply (a dict lookup, three additions and a bisect per
request) for the dashboard, which polls them and derives requests/s, p50/p99 and
the error rate from the difference between two polls. Each worker process keeps
its own; the admin API answers from the worker that took its connection.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from typing import Optional

__all__ = ["RouteStats", "BUCKETS"]

#: Upper bounds of the latency buckets, in seconds (the last bucket is open-ended).
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class _Route:
    __slots__ = ("requests", "errors", "buckets")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.buckets = [0] * (len(BUCKETS) + 1)


class RouteStats:
    """Counters per route name, plus the last ``keep_errors`` proxy errors with their cause."""

    def __init__(self, keep_errors: int = 50) -> None:
        self.routes: dict[str, _Route] = {}
        self.errors: deque = deque(maxlen=keep_errors)

    def observe(self, route: str, status: int, seconds: float) -> None:
        entry = self.routes.get(route)
        if entry is None:
            entry = self.routes[route] = _Route()
        entry.requests += 1
        if status >= 500 or status == 0:
            entry.errors += 1
        entry.buckets[bisect_left(BUCKETS, seconds)] += 1

    def error(self, route: Optional[str], status: int, cause: str, backend: Optional[str]) -> None:
        self.errors.append({"when": time.time(), "route": route, "status": status,
                            "backend": backend, "cause": cause})

    def snapshot(self) -> dict:
        """Cumulative counters (the reader takes differences between two snapshots)."""
        return {"when": time.time(), "buckets": list(BUCKETS),
                "routes": {name: {"requests": r.requests, "errors": r.errors, "latency": list(r.buckets)}
                           for name, r in self.routes.items()},
                "errors": list(self.errors)}
