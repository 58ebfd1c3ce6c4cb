"""``CacheLock``: one request fills a key, the others wait for it (Pingora's ``CacheLock``).

:meth:`CacheLock.lock` hands the first caller for a key a :class:`WritePermit` and every
later caller a :class:`ReadLock`, until the permit is released. A writer releases with
the outcome of its fill; readers waiting in :meth:`ReadLock.wait` are woken in the order
they started waiting and act on the status they get:

* ``DONE`` — look the key up again (with streaming storage the writer releases as soon as
  its fill exists, so readers stream the body while it arrives);
* ``TRANSIENT_ERROR``, ``DANGLING`` (the permit was dropped unreleased) or
  ``AGE_TIMEOUT`` (the writer held the lock longer than ``age_timeout``) — call
  :meth:`CacheLock.lock` again: one of them becomes the new writer;
* ``GIVE_UP`` — the response is not cacheable: go upstream without caching
  (NoCacheReason.CACHE_LOCK_GIVE_UP);
* ``WAIT_TIMEOUT`` — this reader waited ``wait_timeout`` seconds: go upstream without
  caching (NoCacheReason.CACHE_LOCK_TIMEOUT).

A writer whose lock is older than ``age_timeout`` no longer blocks anyone: the next
:meth:`lock` call for the key gets a new permit and the old writer's release is ignored.
Time is ``time.monotonic()``; the lock is per process (one event loop).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from typing import Optional, Union

from .key import CacheKey
from .stats import CacheStats

__all__ = ["CacheLock", "LockStatus", "WritePermit", "ReadLock"]


class LockStatus(enum.Enum):
    WAITING = "waiting"
    DONE = "done"
    TRANSIENT_ERROR = "transient_error"
    GIVE_UP = "give_up"
    DANGLING = "dangling"
    AGE_TIMEOUT = "age_timeout"
    WAIT_TIMEOUT = "wait_timeout"


class _Entry:
    __slots__ = ("status", "acquired", "waiters")

    def __init__(self, acquired: float) -> None:
        self.status = LockStatus.WAITING
        self.acquired = acquired
        self.waiters: deque[asyncio.Future] = deque()

    def resolve(self, status: LockStatus) -> None:
        if self.status is not LockStatus.WAITING:
            return
        self.status = status
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(status)


class WritePermit:
    """The right to fill one key. Release it exactly once with the fill's outcome."""

    __slots__ = ("_lock", "_key", "_entry")

    def __init__(self, lock: "CacheLock", key: str, entry: _Entry) -> None:
        self._lock = lock
        self._key = key
        self._entry = entry

    @property
    def key(self) -> str:
        return self._key

    def released(self) -> bool:
        return self._entry.status is not LockStatus.WAITING

    def release(self, status: LockStatus = LockStatus.DONE) -> None:
        """Wake the readers with ``status`` (idempotent)."""
        if status is LockStatus.WAITING:
            raise ValueError("release with a final status, not WAITING")
        self._lock._release(self._key, self._entry, status)

    def __del__(self) -> None:
        # A permit lost without release (a bug or a cancelled task) must not leave
        # readers waiting until their timeout.
        if self._entry.status is LockStatus.WAITING:
            self._lock._release(self._key, self._entry, LockStatus.DANGLING)


class ReadLock:
    """A place in the queue of one key's writer."""

    __slots__ = ("_lock", "_entry", "_started")

    def __init__(self, lock: "CacheLock", entry: _Entry) -> None:
        self._lock = lock
        self._entry = entry
        self._started = time.monotonic()

    async def wait(self) -> LockStatus:
        """Wait for the writer's outcome, at most until ``wait_timeout`` since this
        reader arrived or ``age_timeout`` since the writer took the lock."""
        entry = self._entry
        if entry.status is not LockStatus.WAITING:
            return entry.status
        lock = self._lock
        lock.stats.lock_waits += 1
        now = time.monotonic()
        age_left = entry.acquired + lock.age_timeout - now
        wait_left = None if lock.wait_timeout is None else self._started + lock.wait_timeout - now
        limit = age_left if wait_left is None else min(age_left, wait_left)
        fut = asyncio.get_running_loop().create_future()
        entry.waiters.append(fut)
        try:
            if limit <= 0:
                raise TimeoutError
            async with asyncio.timeout(limit):
                return await fut
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                return fut.result()
            lock.stats.lock_timeouts += 1
            if wait_left is not None and wait_left <= age_left:
                return LockStatus.WAIT_TIMEOUT
            return LockStatus.AGE_TIMEOUT
        finally:
            if not fut.done():
                fut.cancel()
            try:
                entry.waiters.remove(fut)
            except ValueError:
                pass

    def lock_age(self) -> float:
        """Seconds since the writer took the lock."""
        return time.monotonic() - self._entry.acquired


class CacheLock:
    """Per-key write locks.

    Args:
        age_timeout: seconds after which a writer's lock stops blocking (a hung writer).
        wait_timeout: seconds a reader waits at most before going upstream uncached
            (None: only ``age_timeout`` applies).
        stats: counters for ``lock_waits`` and ``lock_timeouts``.
    """

    def __init__(self, age_timeout: float, wait_timeout: Optional[float] = None,
                 stats: Optional[CacheStats] = None) -> None:
        if not age_timeout > 0:
            raise ValueError(f"age_timeout must be positive, got {age_timeout!r}")
        if wait_timeout is not None and not wait_timeout > 0:
            raise ValueError(f"wait_timeout must be positive or None, got {wait_timeout!r}")
        self.age_timeout = age_timeout
        self.wait_timeout = wait_timeout
        self.stats = stats if stats is not None else CacheStats()
        self._entries: dict[str, _Entry] = {}

    def lock(self, key: Union[CacheKey, str]) -> Union[WritePermit, ReadLock]:
        """A write permit if nobody fills ``key`` now, else a read lock on the filler."""
        k = key.combined() if isinstance(key, CacheKey) else key
        now = time.monotonic()
        entry = self._entries.get(k)
        if entry is not None and entry.status is LockStatus.WAITING:
            if now - entry.acquired < self.age_timeout:
                return ReadLock(self, entry)
            entry.resolve(LockStatus.AGE_TIMEOUT)
        entry = self._entries[k] = _Entry(now)
        return WritePermit(self, k, entry)

    def is_locked(self, key: Union[CacheKey, str]) -> bool:
        k = key.combined() if isinstance(key, CacheKey) else key
        entry = self._entries.get(k)
        return entry is not None and entry.status is LockStatus.WAITING

    def _release(self, key: str, entry: _Entry, status: LockStatus) -> None:
        entry.resolve(status)
        if self._entries.get(key) is entry:
            del self._entries[key]
