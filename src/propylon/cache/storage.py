"""The storage interface, and the streaming fill every implementation shares.

A storage holds complete entries (meta + body) addressed by :meth:`CacheKey.combined`,
grouped by :meth:`CacheKey.primary_hash` so that one purge removes every Vary variant.

**Filling.** :meth:`Storage.get_miss_handler` starts a *fill* for a key once the
response head is admitted. The writer calls :meth:`MissHandler.write_body` per chunk as
it arrives from the upstream and :meth:`MissHandler.finish` at its end. Only ``finish``
turns the fill into a stored entry; :meth:`MissHandler.abandon` (upstream failed, object
too large, the request was cancelled) drops it, and a fill never finished is never
stored. Until then the fill is visible to :meth:`Storage.lookup` in this process: a
reader gets the new head at once and its body iterator yields the chunks already written
and then each new one as it is written (it never waits for the end of the fill). If the
fill is abandoned, the reader's next read raises :class:`FillAbandoned`, so no reader can
take a truncated body for a complete one.

**Lookup** returns a :class:`CacheHit` or None:

* ``hit.body`` is a :class:`HitHandler` over the body (``hit.complete`` False while it
  streams from a fill in progress);
* ``hit.body is None`` when the key has no variance but the resource varies: ``hit.meta``
  is the head of the latest variant, so the caller computes the request's variance from
  its ``Vary`` field, sets it on the key and looks up again.

A fill in progress wins over a stored entry of the same key: it is the newer response
(a refresh of a stale entry); if it is abandoned, lookups find the stored entry again.

**Purge** removes a primary key's entries and variants, entries by tag (``Cache-Tag``,
``Surrogate-Key``) or by primary-key prefix. A fill in progress for a purged key still
streams to its readers but is not stored when it finishes.

**Size.** Each storage refuses bodies above ``max_object_bytes``: ``write_body``
abandons the fill and raises :class:`ObjectTooLarge`. The chunks of a fill are held in
memory until ``finish`` (readers stream them), so this bound is also the memory a fill
may take.
"""

from __future__ import annotations

import asyncio
import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from .key import CacheKey
from .meta import CacheMeta
from .stats import CacheStats

__all__ = [
    "Storage", "MissHandler", "HitHandler", "CacheHit", "FillAbandoned", "ObjectTooLarge",
    "StorageError", "BytesHit", "FillHit", "LOOKUP_PENDING",
]

#: What :meth:`Storage.lookup_now` returns when the lookup needs I/O: await
#: :meth:`Storage.lookup` instead.
LOOKUP_PENDING = object()


class StorageError(Exception):
    """The storage could not do what was asked (the engine disables caching: StorageError)."""


class FillAbandoned(StorageError):
    """The fill a reader was streaming from ended without being finished."""


class ObjectTooLarge(StorageError):
    """A body grew past the storage's ``max_object_bytes``; the fill was abandoned."""


class HitHandler(ABC):
    """Reads one body. Iterate it (``async for chunk in handler``) or call
    :meth:`read_body` until it returns None."""

    __slots__ = ()

    @abstractmethod
    async def read_body(self) -> Optional[bytes]:
        """The next chunk, or None at the end of the body."""

    def can_seek(self) -> bool:
        """True when :meth:`seek` works (complete bodies of known length)."""
        return False

    def read_now(self) -> Optional[bytes]:
        """The rest of the body in one piece when it is in memory and small (one
        ``read_body`` chunk), without awaiting; None otherwise (use :meth:`read_body`)."""
        return None

    def seek(self, start: int, end: Optional[int] = None) -> None:
        """Restrict reading to bytes ``start`` .. ``end`` (inclusive, as in a Range)."""
        raise StorageError("this body cannot seek")

    async def aclose(self) -> None:
        """Release what the handler holds (file handles); reading stops."""

    def __aiter__(self) -> "HitHandler":
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read_body()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


@dataclass(slots=True, init=False)
class CacheHit:
    """What :meth:`Storage.lookup` found (see the module docstring)."""

    meta: CacheMeta
    body: Optional[HitHandler]
    complete: bool = True

    # Written out so that it is compiled with the module: one per lookup.
    def __init__(self, meta: CacheMeta, body: Optional[HitHandler], complete: bool = True) -> None:
        self.meta = meta
        self.body = body
        self.complete = complete


class BytesHit(HitHandler):
    """A complete body held in memory (``bytes``), served in ``chunk_size`` pieces;
    the whole body, when it fits in one piece, without a copy."""

    __slots__ = ("_body", "_pos", "_end", "_chunk")

    def __init__(self, body: bytes, chunk_size: int = 64 * 1024) -> None:
        self._body = body
        self._pos = 0
        self._end = len(body)
        self._chunk = chunk_size

    async def read_body(self) -> Optional[bytes]:
        pos, end = self._pos, self._end
        if pos >= end:
            return None
        nxt = min(pos + self._chunk, end)
        self._pos = nxt
        return self._piece(pos, nxt)

    def read_now(self) -> Optional[bytes]:
        pos, end = self._pos, self._end
        if end - pos > self._chunk:
            return None
        self._pos = end
        return self._piece(pos, end)

    def _piece(self, start: int, end: int) -> bytes:
        body = self._body
        if start == 0 and end == len(body):
            return body  # the whole body as stored: no copy
        return body[start:end]

    def can_seek(self) -> bool:
        return True

    def seek(self, start: int, end: Optional[int] = None) -> None:
        size = len(self._body)
        if not 0 <= start <= size:
            raise StorageError(f"seek start {start} outside a body of {size} bytes")
        self._pos = start
        self._end = size if end is None else min(end + 1, size)


class _FillState(enum.Enum):
    WRITING = "writing"
    FINISHED = "finished"
    ABANDONED = "abandoned"


class Fill:
    """A body being written, readable by any number of streaming readers meanwhile."""

    __slots__ = ("key", "meta", "chunks", "size", "state", "discard", "_waiters")

    def __init__(self, key: CacheKey, meta: CacheMeta) -> None:
        self.key = key
        self.meta = meta
        self.chunks: list[bytes] = []
        self.size = 0
        self.state = _FillState.WRITING
        self.discard = False  # purged while filling: finish will not store it
        self._waiters: list[asyncio.Future] = []

    def append(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk)
        self._wake()

    def end(self, state: _FillState) -> None:
        if self.state is _FillState.WRITING:
            self.state = state
            self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def chunk_at(self, index: int) -> Optional[bytes]:
        """Chunk ``index`` once written; None when the fill finished before it."""
        while True:
            if index < len(self.chunks):
                if self.state is _FillState.ABANDONED:
                    raise FillAbandoned(f"the fill of {self.key.combined()} was abandoned")
                return self.chunks[index]
            if self.state is _FillState.FINISHED:
                return None
            if self.state is _FillState.ABANDONED:
                raise FillAbandoned(f"the fill of {self.key.combined()} was abandoned")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter


class FillHit(HitHandler):
    """Streams a fill in progress: the chunks written so far, then each new one."""

    __slots__ = ("_fill", "_index")

    def __init__(self, fill: Fill) -> None:
        self._fill = fill
        self._index = 0

    async def read_body(self) -> Optional[bytes]:
        chunk = await self._fill.chunk_at(self._index)
        if chunk is not None:
            self._index += 1
        return chunk


class MissHandler:
    """Writes one fill; made by :meth:`Storage.get_miss_handler`."""

    __slots__ = ("_storage", "_fill", "_limit")

    def __init__(self, storage: "Storage", fill: Fill, limit: int) -> None:
        self._storage = storage
        self._fill = fill
        self._limit = limit

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._fill.size

    async def write_body(self, chunk: bytes) -> None:
        """Add a chunk; raises :class:`ObjectTooLarge` (fill abandoned) past the limit."""
        fill = self._fill
        if fill.state is not _FillState.WRITING:
            raise StorageError("write to a fill that already ended")
        if fill.size + len(chunk) > self._limit:
            self.abandon()
            raise ObjectTooLarge(f"body exceeds max_object_bytes={self._limit}")
        if chunk:
            fill.append(bytes(chunk))

    async def finish(self) -> int:
        """Store the complete entry, then end the fill; returns the body size.

        Readers already streaming the fill see its end after the entry is stored, so a
        reader that looks up again finds it. If storing fails, the error is raised here
        and readers still get the whole body (it is complete, only not stored).
        """
        fill = self._fill
        if fill.state is not _FillState.WRITING:
            raise StorageError("finish of a fill that already ended")
        try:
            if not fill.discard:
                await self._storage._commit(fill)
        finally:
            self._storage._fill_ended(fill)
            fill.end(_FillState.FINISHED)
        return fill.size

    def abandon(self) -> None:
        """Drop the fill (idempotent, and a no-op after ``finish``)."""
        fill = self._fill
        if fill.state is _FillState.WRITING:
            self._storage._fill_ended(fill)
            fill.end(_FillState.ABANDONED)

    def __del__(self) -> None:
        # A writer that vanished (its task failed or was dropped) without finish or
        # abandon must not leave readers waiting for chunks that will never come.
        try:
            self.abandon()
        except RuntimeError:
            pass  # the event loop is already closed: nobody is waiting


class Storage(ABC):
    """A cache storage. Implementations: MemCache, DiskCache, RedisCache.

    Subclasses implement the ``_load``/``_commit``/``_purge_*``/``_update_meta`` steps;
    this base class keeps the fills in progress of this process.
    """

    def __init__(self, max_object_bytes: int, stats: Optional[CacheStats]) -> None:
        if max_object_bytes <= 0:
            raise ValueError(f"max_object_bytes must be positive, got {max_object_bytes}")
        self.max_object_bytes = max_object_bytes
        self.stats = stats if stats is not None else CacheStats()
        self._fills: dict[str, Fill] = {}

    # --- the interface ---------------------------------------------------------------
    async def lookup(self, key: CacheKey) -> Optional[CacheHit]:
        """The entry for ``key`` (a fill in progress first), or None."""
        hit = self.lookup_now(key)
        if hit is LOOKUP_PENDING:
            return await self._load(key)
        return hit

    def lookup_now(self, key: CacheKey):
        """:meth:`lookup` without waiting: the entry, None, or :data:`LOOKUP_PENDING`
        when finding out needs I/O. A hit from memory costs no coroutine."""
        fills = self._fills
        fill = fills.get(key.combined()) if fills else None  # usually no fill is running
        if fill is not None:
            if key.variance is None and fill.key.variance is not None:
                return CacheHit(fill.meta, None)  # a variant is filling: choose yours
            return CacheHit(fill.meta, FillHit(fill), complete=False)
        return self._load_now(key)

    async def get_miss_handler(self, key: CacheKey, meta: CacheMeta) -> MissHandler:
        """Start filling ``key`` with a response whose head is ``meta``.

        ``key`` carries the variance when the response varies; ``meta.variance`` is set
        to it here, and lookups without variance learn at once that the resource varies.
        """
        meta.variance = key.variance
        fill = Fill(key, meta)
        self._fills[key.combined()] = fill
        if key.variance is not None:
            self._fills[key.primary_hash()] = fill
        return MissHandler(self, fill, self.max_object_bytes)

    async def purge(self, key: CacheKey) -> bool:
        """Remove every entry of ``key``'s primary key (all Vary variants)."""
        return await self.purge_primary(key.primary_hash())

    async def purge_primary(self, primary_hash: str) -> bool:
        """Like :meth:`purge`, by the primary hash; True if anything was removed."""
        removed = False
        for fill in set(self._fills.values()):
            if fill.key.primary_hash() == primary_hash:
                fill.discard = True
                self._fill_ended(fill)
                removed = True
        removed = await self._purge_primary(primary_hash) or removed
        if removed:
            self.stats.purges += 1
        return removed

    async def purge_tag(self, tag: Union[bytes, str]) -> int:
        """Remove every entry whose response carried ``tag``; returns how many."""
        tag = tag.encode() if isinstance(tag, str) else tag
        for fill in set(self._fills.values()):
            if tag in fill.meta.tags():
                fill.discard = True
                self._fill_ended(fill)
        n = await self._purge_tag(tag)
        self.stats.purges += n
        return n

    async def purge_prefix(self, prefix: str, namespace: Optional[str] = None) -> int:
        """Remove every entry whose primary key starts with ``prefix`` (in ``namespace``
        only, if given); returns how many primary keys were removed."""
        for fill in set(self._fills.values()):
            k = fill.key
            if k.primary.startswith(prefix) and (namespace is None or k.namespace == namespace):
                fill.discard = True
                self._fill_ended(fill)
        n = await self._purge_prefix(prefix, namespace)
        self.stats.purges += n
        return n

    async def update_meta(self, key: CacheKey, meta: CacheMeta) -> bool:
        """Replace the stored meta of ``key`` (after a 304); False if it is gone."""
        meta.variance = key.variance
        return await self._update_meta(key, meta)

    async def aclose(self) -> None:
        """Release connections and threads (no-op by default)."""

    # --- for the miss handler ----------------------------------------------------------
    def _fill_ended(self, fill: Fill) -> None:
        for c in (fill.key.combined(), fill.key.primary_hash()):
            if self._fills.get(c) is fill:
                del self._fills[c]

    # --- implemented by each storage -------------------------------------------------
    @abstractmethod
    async def _load(self, key: CacheKey) -> Optional[CacheHit]: ...

    def _load_now(self, key: CacheKey):
        """``_load`` for a storage that can answer without I/O; by default it cannot."""
        return LOOKUP_PENDING

    @abstractmethod
    async def _commit(self, fill: Fill) -> None:
        """Store ``fill`` (complete: ``fill.chunks``, ``fill.size``, ``fill.meta``)."""

    @abstractmethod
    async def _purge_primary(self, primary_hash: str) -> bool: ...

    @abstractmethod
    async def _purge_tag(self, tag: bytes) -> int: ...

    @abstractmethod
    async def _purge_prefix(self, prefix: str, namespace: Optional[str]) -> int: ...

    @abstractmethod
    async def _update_meta(self, key: CacheKey, meta: CacheMeta) -> bool: ...


class LocalIndex:
    """In-process bookkeeping for MemCache and DiskCache: which entries a primary key,
    a tag or a primary-key prefix selects, and the LRU order by bytes."""

    __slots__ = ("_entries", "_primaries", "_tags")

    def __init__(self) -> None:
        # combined -> (primary hash, tags)
        self._entries: dict[str, tuple[str, Sequence[bytes]]] = {}
        # primary hash -> (namespace, primary text, {combined})
        self._primaries: dict[str, tuple[str, str, set[str]]] = {}
        self._tags: dict[bytes, set[str]] = {}

    def __contains__(self, combined: str) -> bool:
        return combined in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, combined: str, key: CacheKey, tags: Sequence[bytes]) -> None:
        self.remove(combined)
        p = key.primary_hash()
        self._entries[combined] = (p, tags)
        rec = self._primaries.get(p)
        if rec is None:
            rec = self._primaries[p] = (key.namespace, key.primary, set())
        rec[2].add(combined)
        for t in tags:
            self._tags.setdefault(t, set()).add(combined)

    def remove(self, combined: str) -> bool:
        entry = self._entries.pop(combined, None)
        if entry is None:
            return False
        p, tags = entry
        rec = self._primaries.get(p)
        if rec is not None:
            rec[2].discard(combined)
            if not rec[2]:
                del self._primaries[p]
        for t in tags:
            members = self._tags.get(t)
            if members is not None:
                members.discard(combined)
                if not members:
                    del self._tags[t]
        return True

    def of_primary(self, primary_hash: str) -> list[str]:
        rec = self._primaries.get(primary_hash)
        return list(rec[2]) if rec is not None else []

    def of_tag(self, tag: bytes) -> list[str]:
        return list(self._tags.get(tag, ()))

    def of_prefix(self, prefix: str, namespace: Optional[str]) -> list[str]:
        """Primary hashes whose primary key starts with ``prefix``.

        A scan over the primary keys: purges are rare administrative requests, while a
        sorted structure would cost on every store.
        """
        return [p for p, (ns, primary, _) in self._primaries.items()
                if primary.startswith(prefix) and (namespace is None or ns == namespace)]
