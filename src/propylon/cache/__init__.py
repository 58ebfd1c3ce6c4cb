"""HTTP caching with Pingora's semantics (``pingora-cache``), storage built for streaming.

Building blocks:

* :class:`CacheKey` (namespace, primary, variance, user tag; BLAKE2b-128 hashes) and
  :class:`VarianceBuilder` / :func:`variance_from_vary` for ``Vary``;
* :class:`CacheControl` (RFC 9111 §5.2), :func:`resp_cacheable`, :class:`CacheMeta`,
  :class:`CacheMetaDefaults`;
* :class:`CachePhase`, :class:`NoCacheReason`;
* :class:`Storage` with :class:`MemCache`, :class:`DiskCache`, :class:`RedisCache`;
  :class:`EvictionManager` / :class:`LruEviction`;
* :class:`CacheLock`; :class:`PurgeBroadcast`; :class:`CacheStats`.

How the request engine uses them
--------------------------------

One request, with ``storage``, ``lock`` and ``defaults`` chosen by the application (in
``request_cache_filter``) and ``now = time.time()``::

    key = cache_key_callback(session)                  # CacheKey(host, uri)
    hit = await storage.lookup(key)
    if hit is not None and hit.body is None:           # the resource varies:
        key.set_variance(cache_vary_filter(hit.meta, req)   # default:
                         or variance_from_vary(hit.meta.header.headers.get_all_bytes(b"vary"),
                                               req.headers))
        hit = await storage.lookup(key)                # the variant, or None

    HIT    hit and hit.meta.is_fresh(now): stats.hits += 1; send hit.meta.header (copy,
           Age = hit.meta.age(now)), then ``async for chunk in hit.body``. A body with
           ``hit.complete`` False streams a fill in progress; FillAbandoned while
           reading means the fill failed: close the client connection (the head is out).
           Ranges: ``hit.body.can_seek()`` then ``hit.body.seek(start, end)``.
    STALE  hit but not fresh: revalidate upstream (If-None-Match ← ETag,
           If-Modified-Since ← Last-Modified). 304 → merge the new cache headers into a
           copy of the stored head, ``resp_cacheable`` on it: a meta →
           ``await storage.update_meta(key, meta)`` (keep ``created``; stats.revalidated
           += 1) and serve the stored body. Upstream error and
           ``hit.meta.serve_stale_if_error(now)`` → serve stale (stats.stale_served += 1).
           SWR: ``hit.meta.serve_stale_while_revalidate(now)`` and should_serve_stale →
           serve stale now, refresh in the background holding the write lock.
    MISS   None (stats.misses += 1):
           ``l = lock.lock(key)``; a :class:`ReadLock` → ``status = await l.wait()``
           (see :mod:`.lock` for what each status means; DONE → look up again, which
           streams the writer's fill); a :class:`WritePermit` → this request fills:

    resp = upstream response head (request sent with conditionals and Range removed,
           HEAD sent as GET)
    meta = resp_cacheable(CacheControl.from_headers(resp.headers), resp,
                          "authorization" in req.headers, defaults)
    NoCacheReason → permit.release(LockStatus.GIVE_UP); proxy uncached.
    CacheMeta     → if resp varies: key.set_variance(variance of this request)
                    mh = await storage.get_miss_handler(key, meta)
                    permit.release(LockStatus.DONE)        # readers now stream the fill
                    per chunk: await mh.write_body(chunk); send it downstream
                    ObjectTooLarge → the fill is dropped, keep proxying uncached
                    at the end: await mh.finish()          # now a stored entry
                    upstream failure: mh.abandon()         # nothing stored, readers fail
                    client gone: keep reading the upstream into mh, then finish.

Purge (``is_purge``): ``await storage.purge(key)`` (or a :class:`PurgeBroadcast`'s) →
200 when True, 404 when False, 405 when caching is off for the request. Purges by tag or
prefix: ``purge_tag(tag)``, ``purge_prefix(prefix)``.
"""

from .cache_control import CacheControl, Cacheable
from .disk import DiskCache
from .eviction import EvictionManager, LruEviction
from .filters import parse_http_date, resp_cacheable
from .key import CacheKey, VarianceBuilder, variance_from_vary, vary_names
from .lock import CacheLock, LockStatus, ReadLock, WritePermit
from .memory import MemCache
from .meta import CacheMeta, CacheMetaDefaults
from .phase import CachePhase, NoCacheReason
from .purge import PurgeBroadcast
from .redis_store import RedisCache
from .stats import CacheStats
from .storage import (CacheHit, FillAbandoned, HitHandler, MissHandler, ObjectTooLarge, Storage,
                      StorageError)

__all__ = [
    "CacheKey", "VarianceBuilder", "variance_from_vary", "vary_names",
    "CacheControl", "Cacheable", "resp_cacheable", "parse_http_date",
    "CacheMeta", "CacheMetaDefaults", "CachePhase", "NoCacheReason",
    "Storage", "CacheHit", "HitHandler", "MissHandler", "StorageError", "FillAbandoned", "ObjectTooLarge",
    "MemCache", "DiskCache", "RedisCache", "EvictionManager", "LruEviction",
    "CacheLock", "LockStatus", "ReadLock", "WritePermit", "PurgeBroadcast", "CacheStats",
]
