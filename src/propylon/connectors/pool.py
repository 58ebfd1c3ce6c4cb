"""Idle upstream connections kept for reuse.

Connections are grouped by the peer's reuse key and handed out newest first (a
recently used connection is the least likely to have been closed by the origin).
One LRU order across all keys bounds the total (``upstream_keepalive_pool_size``):
releasing into a full pool closes the least recently released connection,
whatever its key. The pool is per worker process, as Pingora's is per thread.

Peers may also share an :class:`IdleGroup` (a gateway cluster's ``pool_size``, like
nginx's ``keepalive N`` in an upstream block): at most ``size`` idle connections to
all the peers of the group stay in this pool, the least recently released going
first. It bounds what is kept idle, not what is open: a burst opens as many
connections as it needs, and what it releases beyond the bound is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any, Hashable, Optional

__all__ = ["ConnectionPool", "IdleGroup"]

_MISSING = object()


class IdleGroup:
    """Peers whose idle connections share one bound, ``size`` per pool (per worker).
    Put the same object on each peer of the group (``HttpPeer.idle_group``)."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


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
        # (idle-timeout timer or None, IdleGroup or None) of the connections that have
        # either: one dict, so that a pool with neither pays one check per get.
        self._extras: dict[Any, tuple] = {}
        # Per IdleGroup, its idle connections in release order.
        self._groups: dict[IdleGroup, dict[Any, None]] = {}
        self._on_idle_event = self._discard  # bound once, handed to every pooled connection

    def __len__(self) -> int:
        return len(self._lru)

    def idle_in(self, group: IdleGroup) -> int:
        """How many idle connections of ``group``'s peers this pool keeps."""
        conns = self._groups.get(group)
        return len(conns) if conns is not None else 0

    def get(self, key: Hashable) -> Optional[Any]:
        """An idle connection for ``key``, or None."""
        conns = self._by_key.get(key)
        while conns:
            conn = conns.pop()
            del self._lru[conn]
            if self._extras:
                self._drop_extras(conn)
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
            self._extras[conn] = (asyncio.get_event_loop().call_later(idle_timeout, self._expire, conn), None)
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

    def put_in_group(self, key: Hashable, conn: Any, idle_timeout: Optional[float], group: IdleGroup) -> None:
        """``put``, for a peer of ``group``: when the group already has ``group.size``
        idle connections here, its least recently released one is closed first."""
        if self.size <= 0 or group.size <= 0:
            conn.close()
            return
        idle = self._groups.get(group)
        while idle and len(idle) >= group.size:
            old = next(iter(idle))
            self._discard(old)
            old.close()
        self.put(key, conn, idle_timeout)
        idle = self._groups.get(group)  # the evictions may have emptied and removed it
        if idle is None:
            idle = self._groups[group] = {}
        idle[conn] = None
        extra = self._extras.get(conn)
        self._extras[conn] = (extra[0] if extra is not None else None, group)

    def _drop_extras(self, conn: Any) -> None:
        extra = self._extras.pop(conn, None)
        if extra is None:
            return
        timer, group = extra
        if timer is not None:
            timer.cancel()
        if group is not None:
            idle = self._groups.get(group)
            if idle is not None:
                idle.pop(conn, None)
                if not idle:  # a group of an older configuration goes with its last connection
                    del self._groups[group]

    def _expire(self, conn: Any) -> None:
        if conn in self._lru:
            self._discard(conn)
            conn.close()

    def _discard(self, conn: Any) -> None:
        key = self._lru.pop(conn, _MISSING)
        if key is _MISSING:
            return
        self._drop_extras(conn)
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
