"""``DiskCache``: entries as files under a directory, bounded in bytes, LRU eviction.

Layout: ``<root>/<2 hex>/<32 hex combined hash>``, one file per entry, plus ``<root>/tmp``
for files being written. A file is::

    "PDC1" | meta length (u32) | namespace length (u16) | primary length (u16) |
    body length (u64) | namespace | primary | meta | body

An entry is written to ``tmp`` and renamed into place (``os.replace`` is atomic), so a
reader or a restart sees either the whole old file or the whole new one. At start the
directory is scanned (synchronously: the cache is opened before serving) and the index
rebuilt from each file's fixed part, names and meta, oldest modification first so the
LRU order survives roughly; files that are short, malformed or left in ``tmp`` are
deleted. Files are not fsynced: after a power loss an entry may be lost, and the scan
drops a file whose length does not match its header.

I/O and the event loop: files up to ``SYNC_IO_BYTES`` (64 KiB) are read and written
inline, because a page-cache copy of that size takes microseconds while a thread hop
costs more; larger bodies are written in a worker thread and read in ``CHUNK``-sized
pieces in worker threads, so a large object never stalls other requests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from typing import Optional

from .eviction import EvictionManager, LruEviction
from .key import CacheKey
from .meta import CacheMeta
from .stats import CacheStats
from .storage import BytesHit, CacheHit, Fill, HitHandler, LocalIndex, Storage, StorageError

__all__ = ["DiskCache"]

logger = logging.getLogger("propylon.cache")

_MAGIC = b"PDC1"
_HEAD = struct.Struct(">4sIHHQ")
SYNC_IO_BYTES = 64 * 1024
CHUNK = 256 * 1024


class _FileHit(HitHandler):
    """Reads a large body from an open file in worker threads."""

    __slots__ = ("_f", "_start", "_pos", "_end")

    def __init__(self, f, body_start: int, body_len: int) -> None:
        self._f = f
        self._start = body_start
        self._pos = 0
        self._end = body_len

    async def read_body(self) -> Optional[bytes]:
        if self._pos >= self._end or self._f.closed:
            await self.aclose()
            return None
        n = min(CHUNK, self._end - self._pos)
        data = await asyncio.to_thread(os.pread, self._f.fileno(), n, self._start + self._pos)
        if len(data) != n:
            await self.aclose()
            raise StorageError("cache file shrank while being read")
        self._pos += n
        return data

    def can_seek(self) -> bool:
        return True

    def seek(self, start: int, end: Optional[int] = None) -> None:
        self._pos = start
        if end is not None:
            self._end = min(self._end, end + 1)

    async def aclose(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __del__(self) -> None:
        if not self._f.closed:
            self._f.close()


class DiskCache(Storage):
    """Storage in files under ``root``.

    Args:
        root: the directory (created if missing). One ``DiskCache`` per directory.
        max_bytes: the budget for all files (their sizes on disk, headers included).
        max_object_bytes: the largest body stored (default: an eighth of ``max_bytes``).
        eviction: the eviction manager (default: :class:`LruEviction` over ``max_bytes``).
        stats: counters to update.
    """

    def __init__(self, root: str, max_bytes: int, *, max_object_bytes: Optional[int] = None,
                 eviction: Optional[EvictionManager] = None, stats: Optional[CacheStats] = None) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        super().__init__(max_object_bytes or max(1, max_bytes // 8), stats)
        self.root = os.path.abspath(root)
        self.max_bytes = max_bytes
        self.eviction = eviction if eviction is not None else LruEviction(max_bytes)
        self._index = LocalIndex()
        self._sizes: dict[str, int] = {}
        self._tmp = os.path.join(self.root, "tmp")
        os.makedirs(self._tmp, exist_ok=True)
        self._seq = 0
        self._scan()

    def __len__(self) -> int:
        return len(self._sizes)

    def _path(self, c: str) -> str:
        return os.path.join(self.root, c[:2], c)

    # --- start-up scan -----------------------------------------------------------------
    def _scan(self) -> None:
        for name in os.listdir(self._tmp):
            _unlink(os.path.join(self._tmp, name))
        found = []
        for sub in os.listdir(self.root):
            d = os.path.join(self.root, sub)
            if sub == "tmp" or len(sub) != 2 or not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                path = os.path.join(d, name)
                try:
                    st = os.stat(path)
                    key, meta, _ = _read_head(path, st.st_size)
                except (OSError, ValueError) as exc:
                    logger.warning("cache: dropping unreadable cache file %s (%s)", path, exc)
                    _unlink(path)
                    continue
                found.append((st.st_mtime, name, key, meta, st.st_size))
        found.sort(key=lambda f: f[0])
        for _, c, key, meta, size in found:
            self._admit(c, key, meta.tags(), size)
        if found:
            logger.info("cache: %d entries (%d bytes) found in %s", len(self._sizes),
                        self.stats.bytes_stored, self.root)

    # --- storage steps ---------------------------------------------------------------
    async def _load(self, key: CacheKey) -> Optional[CacheHit]:
        c = key.combined()
        size = self._sizes.get(c)
        if size is None:
            return None
        path = self._path(c)
        try:
            if size <= SYNC_IO_BYTES:
                with open(path, "rb") as f:
                    data = f.read()
                key_len, meta, body_start = _parse_head(data, len(data))
                self.eviction.access(c)
                if meta.body_len == 0 and meta.variance is not None and c == key.primary_hash():
                    return CacheHit(meta, None)
                return CacheHit(meta, BytesHit(data[body_start:]))
            f = open(path, "rb")
        except FileNotFoundError:
            self._forget(c, evicted=False)
            return None
        except (OSError, ValueError) as exc:
            logger.warning("cache: unreadable cache file %s (%s); dropped", path, exc)
            self._forget(c, evicted=False)
            _unlink(path)
            return None
        try:
            head = f.read(SYNC_IO_BYTES)
            key_len, meta, body_start = _parse_head(head, size)
        except (OSError, ValueError) as exc:
            f.close()
            logger.warning("cache: unreadable cache file %s (%s); dropped", path, exc)
            self._forget(c, evicted=False)
            _unlink(path)
            return None
        self.eviction.access(c)
        return CacheHit(meta, _FileHit(f, body_start, meta.body_len or 0))

    async def _commit(self, fill: Fill) -> None:
        key, meta = fill.key, fill.meta
        meta.body_len = fill.size
        c = key.combined()
        tags = meta.tags()
        size = await self._write(c, key, meta, fill.chunks, fill.size)
        if fill.discard:  # purged while the file was being written
            _unlink(self._path(c))
            return
        self._admit(c, key, tags, size)
        if key.variance is not None:
            record = CacheMeta(meta.fresh_until, meta.created, meta.updated, meta.stale_while_revalidate_sec,
                               meta.stale_if_error_sec, meta.header, meta.variance, 0)
            p = key.primary_hash()
            self._admit(p, key, tags, await self._write(p, key, record, [], 0))

    async def _write(self, c: str, key: CacheKey, meta: CacheMeta, chunks: list, body_len: int) -> int:
        ns, primary, m = key.namespace.encode(), key.primary.encode(), meta.to_bytes()
        head = _HEAD.pack(_MAGIC, len(m), len(ns), len(primary), body_len) + ns + primary + m
        self._seq += 1
        tmp = os.path.join(self._tmp, f"{c}.{os.getpid()}.{self._seq}")
        final = self._path(c)
        size = len(head) + body_len
        try:
            if size <= SYNC_IO_BYTES:
                _write_file(tmp, final, head, chunks)
            else:
                await asyncio.to_thread(_write_file, tmp, final, head, chunks)
        except OSError as exc:
            _unlink(tmp)
            raise StorageError(f"cannot write cache file {final}: {exc}") from exc
        return size

    def _admit(self, c: str, key: CacheKey, tags: list[bytes], size: int) -> None:
        self._forget(c, evicted=False)
        self._sizes[c] = size
        self._index.add(c, key, tags)
        self.stats.bytes_stored += size
        self.stats.entries += 1
        for victim in self.eviction.admit(c, size):
            self._forget(victim, evicted=True)
            _unlink(self._path(victim))

    def _forget(self, c: str, evicted: bool) -> bool:
        size = self._sizes.pop(c, None)
        if size is None:
            return False
        if evicted:
            self.stats.evictions += 1
        else:
            self.eviction.remove(c)
        self._index.remove(c)
        self.stats.bytes_stored -= size
        self.stats.entries -= 1
        return True

    def _delete(self, c: str) -> bool:
        if self._forget(c, evicted=False):
            _unlink(self._path(c))
            return True
        return False

    async def _purge_primary(self, primary_hash: str) -> bool:
        removed = False
        for c in self._index.of_primary(primary_hash):
            removed = self._delete(c) or removed
        return removed

    async def _purge_tag(self, tag: bytes) -> int:
        return sum(self._delete(c) for c in self._index.of_tag(tag))

    async def _purge_prefix(self, prefix: str, namespace: Optional[str]) -> int:
        n = 0
        for p in self._index.of_prefix(prefix, namespace):
            n += await self._purge_primary(p)
        return n

    async def _update_meta(self, key: CacheKey, meta: CacheMeta) -> bool:
        hit = await self._load(key)
        if hit is None or hit.body is None:
            return False
        chunks = [chunk async for chunk in hit.body]
        meta.body_len = sum(map(len, chunks))
        c = key.combined()
        size = await self._write(c, key, meta, chunks, meta.body_len)
        self._admit(c, key, meta.tags(), size)
        return True


def _write_file(tmp: str, final: str, head: bytes, chunks: list) -> None:
    with open(tmp, "wb") as f:
        f.write(head)
        for chunk in chunks:
            f.write(chunk)
    try:
        os.replace(tmp, final)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(tmp, final)


def _parse_head(data: bytes, file_size: int) -> tuple[CacheKey, CacheMeta, int]:
    """(key, meta, body offset) from the start of a file of ``file_size`` bytes."""
    if len(data) < _HEAD.size:
        raise ValueError("shorter than its header")
    magic, mlen, nslen, plen, blen = _HEAD.unpack_from(data, 0)
    if magic != _MAGIC:
        raise ValueError(f"not a cache file (starts with {magic!r})")
    pos = _HEAD.size
    body_start = pos + nslen + plen + mlen
    if body_start > len(data):
        raise ValueError("header larger than expected")
    if body_start + blen != file_size:
        raise ValueError(f"{file_size} bytes, its header says {body_start + blen}")
    ns = data[pos:pos + nslen].decode()
    primary = data[pos + nslen:pos + nslen + plen].decode()
    meta = CacheMeta.from_bytes(data[pos + nslen + plen:body_start])
    meta.body_len = blen
    key = CacheKey(ns, primary, meta.variance)
    return key, meta, body_start


def _read_head(path: str, size: int) -> tuple[CacheKey, CacheMeta, int]:
    with open(path, "rb") as f:
        head = f.read(_HEAD.size)
        if len(head) < _HEAD.size:
            raise ValueError("shorter than its header")
        _, mlen, nslen, plen, _ = _HEAD.unpack(head)
        head += f.read(nslen + plen + mlen)
    return _parse_head(head, size)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("cache: cannot delete %s (%s)", path, exc)
