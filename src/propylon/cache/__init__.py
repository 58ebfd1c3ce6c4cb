"""HTTP caching with Pingora's semantics (``pingora-cache``), storage built for streaming.

Building blocks:

* :class:`CacheKey` (namespace, primary, variance, user tag; BLAKE2b-128 hashes) and
  :class:`VarianceBuilder` / :func:`variance_from_vary` for ``Vary``;
* :class:`CacheControl` (RFC 9111 §5.2), :func:`resp_cacheable`, :class:`CacheMeta`,
  :class:`CacheMetaDefaults`;
* :class:`CachePhase`, :class:`NoCacheReason`;
* :class:`Storage` with :class:`MemCache`, :class:`DiskCache`, :class:`RedisCache`;
  :class:`EvictionManager` / :class:`LruEviction`;
* :class:`CacheLock`; :class:`Predictor`; :class:`PurgeBroadcast`; :class:`CacheStats`;
* :class:`HttpCache`, one request's state machine (``session.cache``), and the
  request-side rules in :mod:`.conditional` (upstream request of a miss, 304s from
  cache, byte ranges).

How the request engine uses them
--------------------------------

The engine keeps one :class:`HttpCache` per request (``session.cache``) and drives it;
the hooks named below are ``ProxyHttp``'s. ``req`` is the downstream request head::

    request_cache_filter(session, ctx)        # the app: session.cache.enable(storage, lock=...)
    if not cache.enabled(): proxy as today
    cache.set_cache_key(cache_key_callback(session, ctx))   # default_cache_key(req): Host + target
    if is_purge(session, ctx): ok = await storage.purge(cache.cache_key())
                               → 200 if ok, 404 if not (405 when caching is off)
    lookup:
      hit = await cache.cache_lookup(req.headers, vary_filter)  # variant chosen here
      hit and fresh → cache.cache_found(hit)  → HIT: cache_hit_filter may refuse
      hit and stale → cache.cache_found(hit)  → STALE; reader = cache.lock():
                      the writer revalidates (below); a reader serves stale at once
                      under SWR, else waits like a miss's reader
      None          → reader = cache.lock()
                      reader → status = await cache.wait_lock(reader)
                               DONE → lookup again (streams the writer's fill);
                               AGE_TIMEOUT/TRANSIENT_ERROR/DANGLING → cache.lock() again;
                               disabled (timeout, give-up) → proxy uncached
                      None   → cache.cache_miss() → MISS, this request fills

    serving a hit (HIT, STALE served, REVALIDATED...):
      head = copy of hit.meta.header, Age = hit.meta.age(); conditional.not_modified(req,
      head) → conditional.to_304(head), no body; HEAD → head only;
      conditional.range_request(req, head) + apply_range_headers (+ multipart_head_and_parts)
      with hit.body.seek(start, end) when hit.body.can_seek();
      body: ``async for chunk in hit.body``. FillAbandoned while reading = the fill
      failed after the head went out: close the downstream connection.

    MISS / STALE going upstream:
      conditional.upstream_request_for_cache(upstream_req, stale_meta_or_None)
      response head → cc = CacheControl.from_headers(resp.headers)
        304 and STALE: merged = merge_304_header(stored head, resp);
           response_cache_filter(merged) → meta → await cache.revalidate_cache_meta(meta)
           (REVALIDATED, entry updated) or reason → cache.revalidate_uncacheable(reason);
           serve the stored body either way.
        5xx or error and STALE: hit.meta.serve_stale_if_error() and should_serve_stale
           → serve stale (cache.serve_stale()), else the error.
        otherwise: response_cache_filter → resp_cacheable(cc, resp, "authorization" in
           req.headers, defaults) → a NoCacheReason → cache.disable(reason) (write lock
           released as GIVE_UP), proxy uncached; a CacheMeta → if it varies:
           cache.set_variance(cache_vary_filter or variance_from_vary(...)), then
           await cache.set_miss_handler(meta, content_length)  (readers now stream it)
           per body chunk: await cache.write_body(chunk) (False: no longer caching,
           keep proxying), send it downstream even if the client left;
           end of body: await cache.finish_miss_handler(); upstream failure:
           cache.disable(NoCacheReason.UPSTREAM_ERROR) — nothing partial is stored.
    SWR: STALE, hit.meta.serve_stale_while_revalidate() and should_serve_stale(None):
      the request that gets the write lock refreshes in the background while everybody
      is served stale (cache.set_stale_updating()).
    logging: cache.phase(), cache.no_cache_reason(), cache.lock_duration();
    metrics: storage.stats (CacheStats).

Purges by tag or prefix (admin API, PURGE with a header...): ``storage.purge_tag(tag)``,
``storage.purge_prefix(prefix)``, or through a :class:`PurgeBroadcast` so that every
instance's MemCache hears it.
"""

import importlib
from typing import Any

from .cache_control import CacheControl, Cacheable
from .conditional import (RangeKind, RangeRequest, apply_range_headers, multipart_head_and_parts, not_modified,
                          range_request, to_304, upstream_request_for_cache)
from .disk import DiskCache
from .eviction import EvictionManager, LruEviction
from .filters import parse_http_date, resp_cacheable
from .http_cache import HttpCache, VaryFilter, default_vary_filter, merge_304_header
from .key import CacheKey, VarianceBuilder, default_cache_key, variance_from_vary, vary_names
from .lock import CacheLock, LockStatus, ReadLock, WritePermit
from .memory import MemCache
from .meta import CacheMeta, CacheMetaDefaults
from .phase import CachePhase, NoCacheReason
from .predictor import Predictor
from .stats import CacheStats
from .storage import (CacheHit, FillAbandoned, HitHandler, MissHandler, ObjectTooLarge, Storage,
                      StorageError)

__all__ = [
    "CacheKey", "VarianceBuilder", "default_cache_key", "variance_from_vary", "vary_names",
    "CacheControl", "Cacheable", "resp_cacheable", "parse_http_date",
    "CacheMeta", "CacheMetaDefaults", "CachePhase", "NoCacheReason",
    "Storage", "CacheHit", "HitHandler", "MissHandler", "StorageError", "FillAbandoned", "ObjectTooLarge",
    "MemCache", "DiskCache", "RedisCache", "EvictionManager", "LruEviction",
    "CacheLock", "LockStatus", "ReadLock", "WritePermit", "PurgeBroadcast", "CacheStats",
    "HttpCache", "VaryFilter", "Predictor", "default_vary_filter", "merge_304_header",
    "upstream_request_for_cache", "not_modified", "to_304", "RangeKind", "RangeRequest", "range_request",
    "apply_range_headers", "multipart_head_and_parts",
]

# The Redis-backed parts load on first use: a process caching in memory or on disk does
# not pay for importing the Redis client.
_LAZY = {"RedisCache": ".redis_store", "PurgeBroadcast": ".purge"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'propylon.cache' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
