"""Idle upstream connections kept for reuse.

Connections are grouped by the peer's reuse key and handed out newest first (a
recently used connection is the least likely to have been closed by the origin).
One LRU order across all keys bounds the total (``upstream_keepalive_pool_size``):
releasing into a full pool closes the least recently released connection,
whatever its key. The pool is per worker process, as Pingora's is per thread.
"""

from __future__ import annotations

import asyncio
from typing import Any, Hashable, Optional

__all__ = ["ConnectionPool"]

_MISSING = object()


class ConnectionPool:
    """A bounded LRU pool of idle connections. See the module docstring.

    A pooled connection must have ``idle`` (set while pooled), ``on_idle_event``
    (called by the connection when it becomes unusable while idle) and ``close()``.
    """

    def __init__(self, size: int = 128) -> None:
        self.size = size
        self._by_key: dict[Hashable, list[Any]] = {}
        # Insertion order is release order: the first entry is the least recently released.
        self._lru: dict[Any, Hashable] = {}
        # Idle-timeout timers, for the connections whose peer sets one.
        self._timers: dict[Any, asyncio.TimerHandle] = {}
        self._on_idle_event = self._discard  # bound once, handed to every pooled connection

    def __len__(self) -> int:
        return len(self._lru)

    def get(self, key: Hashable) -> Optional[Any]:
        """An idle connection for ``key``, or None."""
        conns = self._by_key.get(key)
        while conns:
            conn = conns.pop()
            del self._lru[conn]
            if self._timers:
                timer = self._timers.pop(conn, None)
                if timer is not None:
                    timer.cancel()
            conn.idle = False
            conn.on_idle_event = None
            if not conn.closed:
                return conn
        return None

    def put(self, key: Hashable, conn: Any, idle_timeout: Optional[float] = None) -> None:
        """Keep ``conn`` for later requests to ``key``."""
        if self.size <= 0:
            conn.close()
            return
        while len(self._lru) >= self.size:
            old = next(iter(self._lru))
            self._discard(old)
            old.close()
        if idle_timeout is not None:
            self._timers[conn] = asyncio.get_event_loop().call_later(idle_timeout, self._expire, conn)
        conn.idle = True
        conn.on_idle_event = self._on_idle_event
        self._lru[conn] = key
        conns = self._by_key.get(key)
        if conns is None:
            if len(self._by_key) >= 2 * self.size:
                # Keys whose connections were all taken keep an empty list for the
                # next release; drop those once they outnumber the pool.
                self._by_key = {k: v for k, v in self._by_key.items() if v}
            self._by_key[key] = [conn]
        else:
            conns.append(conn)

    def _expire(self, conn: Any) -> None:
        if conn in self._lru:
            self._discard(conn)
            conn.close()

    def _discard(self, conn: Any) -> None:
        key = self._lru.pop(conn, _MISSING)
        if key is _MISSING:
            return
        timer = self._timers.pop(conn, None)
        if timer is not None:
            timer.cancel()
        conn.idle = False
        conn.on_idle_event = None
        conns = self._by_key.get(key)
        if conns is not None:
            try:
                conns.remove(conn)
            except ValueError:
                pass
            if not conns:
                del self._by_key[key]

    def close_all(self) -> None:
        for conn in list(self._lru):
            self._discard(conn)
            conn.close()
