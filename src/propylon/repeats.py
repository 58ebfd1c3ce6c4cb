"""One log line per kind of failure per interval, with a count of the repeats.

When an origin is down, every request fails the same way. Writing one ERROR line
per request costs more than the failure itself and buries everything else in the
log. ``RepeatedErrors`` lets the first failure of a kind through in full (cause,
peer, attempts, the request it hit) and only counts the identical ones that
follow within ``interval`` seconds; when the interval ends, one line says how
many there were. A kind is whatever key the caller gives (the engine uses the
error's type, source and context, which names the peer, and the status).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Hashable

__all__ = ["RepeatedErrors"]


class RepeatedErrors:
    """Which error lines to write (see the module docstring). One per engine."""

    __slots__ = ("interval", "_counts")

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        # key → [repeats counted, logger, level, line]
        self._counts: dict[Hashable, list] = {}

    def repeated(self, key: Hashable) -> bool:
        """True (and counted) when a failure of this kind was already logged in the
        current interval; then the caller writes nothing."""
        entry = self._counts.get(key)
        if entry is None:
            return False
        entry[0] += 1
        return True

    def logged(self, key: Hashable, logger: logging.Logger, level: int, line: str) -> None:
        """The caller just logged the first failure of this kind: count the repeats
        from now on, and say how many there were, naming the kind with ``line``."""
        self._counts[key] = [0, logger, level, line]
        asyncio.get_running_loop().call_later(self.interval, self._close, key)

    def _close(self, key: Hashable) -> None:
        repeats, logger, level, line = self._counts.pop(key)
        if repeats:
            logger.log(level, "%s (and %s more in the last %g s)", line, f"{repeats:,}", self.interval)
