"""Count work in progress per key (Pingora's ``Inflight``).

``Inflight.incr(key, n)`` adds ``n`` and returns a :class:`Guard` together with the new
count; releasing the guard subtracts ``n`` again. Pingora releases on ``Drop``; Python
has no deterministic drop, so a guard is released explicitly and exactly once:

* ``guard.release()`` — idempotent; the second call does nothing;
* ``with guard:`` / ``async with guard:`` — released on exit, including on exceptions
  and on ``asyncio`` task cancellation.

Nothing relies on garbage collection: a guard that is never released keeps its count.

Unlike Pingora, which keeps these counts in a 4 × 8192 count-min sketch, counts here are
exact: a dict holds only keys with something in flight, and a key is removed when its
count returns to zero. Memory therefore follows the number of requests in flight, which
a server bounds anyway. Meant for one thread (one event loop per worker).
"""

from __future__ import annotations

from collections.abc import Hashable
from types import TracebackType
from typing import Optional

__all__ = ["Inflight", "Guard"]


class Inflight:
    """Exact per-key in-flight counters with release guards.

    Example (lesson 38)::

        guard, count = INFLIGHT.incr("global")
        if count > 2:
            guard.release()
            return await reject(429)
        ctx.guard = guard          # released when the request ends
    """

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[Hashable, int] = {}

    def incr(self, key: Hashable, n: int = 1) -> tuple["Guard", int]:
        """Add ``n`` for ``key``; return ``(guard, count including n)``."""
        return Guard(self, key, n), self._add(key, n)

    def try_incr(self, key: Hashable, limit: int, n: int = 1) -> Optional["Guard"]:
        """Take ``n`` for ``key`` if the count stays at or below ``limit``.

        Returns the guard, or ``None`` (with nothing taken) when the limit would be
        exceeded.
        """
        guard, count = self.incr(key, n)
        if count > limit:
            guard.release()
            return None
        return guard

    def get(self, key: Hashable) -> int:
        """The current count for ``key`` (0 when nothing is in flight)."""
        return self._counts.get(key, 0)

    def __len__(self) -> int:
        """How many keys have something in flight."""
        return len(self._counts)

    def _add(self, key: Hashable, n: int) -> int:
        counts = self._counts
        count = counts.get(key, 0) + n
        if count:
            counts[key] = count
        else:
            counts.pop(key, None)
        return count


class Guard:
    """A claim of ``value`` on one key of an :class:`Inflight`; release it once.

    ``release()`` subtracts ``value`` exactly once, however many times it is called.
    ``incr()`` adds ``value`` again **without** a matching release (Pingora's
    semantics): the extra count stays until someone subtracts it.
    """

    __slots__ = ("_inflight", "key", "value", "_released")

    def __init__(self, inflight: Inflight, key: Hashable, value: int) -> None:
        self._inflight = inflight
        self.key = key
        self.value = value
        self._released = False

    @property
    def released(self) -> bool:
        """Whether :meth:`release` has run."""
        return self._released

    def release(self) -> None:
        """Give the claim back. Idempotent."""
        if not self._released:
            self._released = True
            self._inflight._add(self.key, -self.value)

    def incr(self) -> int:
        """Add ``value`` once more for this key (not undone by release); return the count."""
        return self._inflight._add(self.key, self.value)

    def get(self) -> int:
        """The key's current count."""
        return self._inflight.get(self.key)

    def __enter__(self) -> "Guard":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    async def __aenter__(self) -> "Guard":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"Guard(key={self.key!r}, value={self.value}, {state})"
