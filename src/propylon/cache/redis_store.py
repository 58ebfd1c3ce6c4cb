"""``RedisCache``: entries in Redis, shared by every process and machine that uses it.

Keys (``prefix`` defaults to ``propylon:cache``):

* ``{prefix}:e:{combined}`` — a hash with ``m`` (the serialised meta) and ``b`` (the
  body); a primary key's Vary record has only ``m``. Each expires when nothing may be
  served from it any more (``fresh_until`` plus the longer serve-stale window, plus
  ``grace`` seconds to allow revalidation), so Redis drops dead entries by itself;
  bound its memory with Redis's own ``maxmemory`` and ``allkeys-lru``;
* ``{prefix}:v:{primary hash}`` — the set of the primary key's entries (its variants);
* ``{prefix}:t:{tag}`` — the set of the entries a purge tag selects;
* ``{prefix}:u`` — a sorted set of ``namespace \\0 primary \\0 primary hash``, read with
  ``ZRANGEBYLEX`` for purges by prefix.

A fill is written in one ``MULTI`` when it finishes, so other processes see whole
entries only; while it is in progress, readers in the writing process stream it (see
:mod:`propylon.cache.storage`) and other processes miss.

When Redis does not answer within ``timeout`` seconds the cache steps aside instead of
failing requests: lookups are misses, stores and purges are skipped. One warning is
logged when an outage starts and one info line when Redis answers again; during an
outage Redis is probed at most every ``retry_after`` seconds, so requests do not each
wait for a timeout.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Optional

import redis.asyncio as aioredis

from ..redis_outage import RedisGuard, RedisUnavailable, redis_client
from .key import CacheKey
from .meta import CacheMeta
from .stats import CacheStats
from .storage import BytesHit, CacheHit, Fill, Storage

__all__ = ["RedisCache"]

logger = logging.getLogger("propylon.cache")

# Removes a primary key's entries, its variant set and its prefix-index member.
_PURGE_PRIMARY = """
local n = 0
for _, c in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  n = n + redis.call('DEL', ARGV[1] .. c)
end
n = n + redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[3], ARGV[2]) end
return n
"""

# Replaces the meta of an entry that still has its body; 0 when the entry is gone.
_UPDATE_META = """
if redis.call('HEXISTS', KEYS[1], 'b') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'm', ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 1
"""

_PURGE_TAG = """
local n = 0
for _, c in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  n = n + redis.call('DEL', ARGV[1] .. c)
end
redis.call('DEL', KEYS[1])
return n
"""


class RedisCache(Storage):
    """Storage in Redis.

    Args:
        url: ``redis://host:port/db`` (used when ``client`` is None; the client made
            from it has ``timeout``-second socket timeouts and no retries).
        client: an existing ``redis.asyncio.Redis`` (not closed by :meth:`aclose`).
        prefix: namespace of this cache's Redis keys.
        max_object_bytes: the largest body stored (default 8 MiB).
        timeout: seconds one Redis call may take before the cache steps aside.
        retry_after: seconds between probes while Redis is unreachable.
        grace: seconds an entry is kept past its last usable moment, for revalidation.
        stats: counters to update (``bytes_stored``/``entries`` count what this process
            wrote, not what Redis holds).
    """

    def __init__(self, url: Optional[str] = None, *, client: Optional[aioredis.Redis] = None,
                 prefix: str = "propylon:cache", max_object_bytes: int = 8 << 20, timeout: float = 0.5,
                 retry_after: float = 1.0, grace: int = 3600, stats: Optional[CacheStats] = None) -> None:
        super().__init__(max_object_bytes, stats)
        if client is None and not url:
            raise ValueError("RedisCache needs url or client")
        self._guard = RedisGuard("cache", "requests go upstream uncached", logger,
                                 timeout=timeout, retry_after=retry_after)
        self._owns_client = client is None
        if client is None:
            client = redis_client(url, timeout)
        self.client = client
        self.timeout = timeout
        self.retry_after = retry_after
        self.grace = grace
        p = prefix.encode()
        self._e, self._v, self._t, self._u = p + b":e:", p + b":v:", p + b":t:", p + b":u"
        self._purge_primary_script = client.register_script(_PURGE_PRIMARY)
        self._purge_tag_script = client.register_script(_PURGE_TAG)
        self._update_meta_script = client.register_script(_UPDATE_META)
        self._call = self._guard.call

    @property
    def available(self) -> bool:
        """False while an outage is in progress."""
        return self._guard.available

    # --- storage steps ----------------------------------------------------------------
    async def _load(self, key: CacheKey) -> Optional[CacheHit]:
        try:
            m, b = await self._call(lambda: self.client.hmget(self._e + key.combined().encode(), "m", "b"))
        except RedisUnavailable:
            return None
        if m is None:
            return None
        try:
            meta = CacheMeta.from_bytes(m)
        except ValueError as exc:
            logger.warning("cache: malformed entry %s in Redis (%s); treated as a miss", key.combined(), exc)
            return None
        if b is None:
            return CacheHit(meta, None)
        meta.body_len = len(b)
        return CacheHit(meta, BytesHit(b))

    async def _commit(self, fill: Fill) -> None:
        key, meta = fill.key, fill.meta
        body = b"".join(fill.chunks)
        meta.body_len = len(body)
        c, p = key.combined().encode(), key.primary_hash().encode()
        expire_at = int(meta.expires_at()) + self.grace
        m = meta.to_bytes()
        ek = self._e + c

        def write() -> Awaitable[Any]:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(ek)
            pipe.hset(ek, mapping={"m": m, "b": body})
            pipe.expireat(ek, expire_at)
            pipe.sadd(self._v + p, c)
            pipe.expire(self._v + p, self._ttl(expire_at))
            if key.variance is not None:
                pk = self._e + p
                pipe.delete(pk)
                pipe.hset(pk, "m", m)
                pipe.expireat(pk, expire_at)
                pipe.sadd(self._v + p, p)
            for tag in meta.tags():
                pipe.sadd(self._t + tag, c)
                pipe.expire(self._t + tag, self._ttl(expire_at))
            pipe.zadd(self._u, {self._member(key): 0})
            return pipe.execute()

        try:
            await self._call(write)
        except RedisUnavailable:
            return  # stepped aside: the response was served, just not stored
        self.stats.bytes_stored += len(m) + len(body)
        self.stats.entries += 1

    def _ttl(self, expire_at: int) -> int:
        # Index sets live at least as long as the longest entry they name.
        return max(1, expire_at - int(time.time()), 86400)

    @staticmethod
    def _member(key: CacheKey) -> bytes:
        return key.namespace.encode() + b"\x00" + key.primary.encode() + b"\x00" + key.primary_hash().encode()

    async def _purge_primary(self, primary_hash: str, member: bytes = b"") -> bool:
        p = primary_hash.encode()
        try:
            n = await self._call(lambda: self._purge_primary_script(
                keys=[self._v + p, self._e + p, self._u], args=[self._e, member]))
        except RedisUnavailable:
            return False
        return n > 0

    async def _purge_tag(self, tag: bytes) -> int:
        try:
            return await self._call(lambda: self._purge_tag_script(keys=[self._t + tag], args=[self._e]))
        except RedisUnavailable:
            return 0

    async def _purge_prefix(self, prefix: str, namespace: Optional[str]) -> int:
        if namespace is None:
            # Members start with the namespace: without one, read them all and match.
            lo, hi, match = b"-", b"+", prefix.encode()
        else:
            start = namespace.encode() + b"\x00" + prefix.encode()
            lo, hi, match = b"[" + start, b"[" + start + b"\xff", None
        try:
            members = await self._call(lambda: self.client.zrangebylex(self._u, lo, hi))
        except RedisUnavailable:
            return 0
        n = 0
        for member in members:
            _, primary, p = member.split(b"\x00")
            if match is not None and not primary.startswith(match):
                continue
            n += await self._purge_primary(p.decode(), member)
        return n

    async def _update_meta(self, key: CacheKey, meta: CacheMeta) -> bool:
        ek = self._e + key.combined().encode()
        m = meta.to_bytes()
        expire_at = int(meta.expires_at()) + self.grace

        try:
            return bool(await self._call(lambda: self._update_meta_script(keys=[ek], args=[m, expire_at])))
        except RedisUnavailable:
            return False

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()
