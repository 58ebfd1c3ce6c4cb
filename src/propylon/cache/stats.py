"""Counters the metrics exporter reads: plain ints, no locking (one event loop per process)."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["CacheStats"]


@dataclass(slots=True)
class CacheStats:
    """Cache counters for one process.

    Storage keeps ``evictions``, ``bytes_stored`` and ``entries`` (gauges of what it holds
    in this process; for Redis the bytes this process wrote). :class:`CacheLock` keeps
    ``lock_waits`` and ``lock_timeouts``. The request engine counts ``hits``, ``misses``,
    ``stale_served`` and ``revalidated`` on its storage's stats. Pass one object to
    several components to gather their counts in one place.
    """

    hits: int = 0
    misses: int = 0
    stale_served: int = 0
    revalidated: int = 0
    lock_waits: int = 0
    lock_timeouts: int = 0
    evictions: int = 0
    purges: int = 0
    bytes_stored: int = 0
    entries: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
