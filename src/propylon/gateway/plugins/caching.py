"""The ``cache`` plugin: a route's responses kept in memory, on disk or in Redis.

The framework's cache stage does the work (lookup, the cache lock, filling while
streaming, stale-while-revalidate, stale-if-error, revalidation with 304s); the
gateway's proxy enables it per request for the routes that have this plugin (see
``GatewayProxy.request_cache_filter``). The plugin itself only adds the status
header to the responses.

Storages outlive reloads: routes whose storage settings are the same share one
storage object per process (and its cache lock), kept as long as a snapshot uses it,
so a reload that leaves the cache section alone keeps what is cached.

A route that splits its traffic (``traffic_split``) sends the same target to two
clusters that may answer differently, so its keys name the cluster that answered:
``cluster_key`` appends it to the target (after a space, which no request target
holds), and a purge of one target removes the entry of each cluster.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Optional

from ...cache import (CacheControl, CacheKey, CacheLock, CacheMetaDefaults, CachePhase, DiskCache, MemCache,
                      default_cache_key, resp_cacheable)
from ...cache.storage import Storage
from ..config import models as m
from .base import Plugin

__all__ = ["RouteCache", "CacheStatus", "storage_for", "live_storages", "purge", "cluster_key"]

#: What the status header says for each phase the response left in.
_STATUS = {CachePhase.HIT: b"HIT", CachePhase.MISS: b"MISS", CachePhase.STALE: b"STALE",
           CachePhase.STALE_UPDATING: b"STALE", CachePhase.EXPIRED: b"EXPIRED",
           CachePhase.REVALIDATED: b"REVALIDATED", CachePhase.REVALIDATED_NO_CACHE: b"REVALIDATED"}


class _Store:
    """A storage and its lock (one fill per key at a time, in this process)."""

    __slots__ = ("storage", "lock", "kind", "__weakref__")

    def __init__(self, storage: Storage, lock: CacheLock, kind: str) -> None:
        self.storage = storage
        self.lock = lock
        self.kind = kind


_stores: "weakref.WeakValueDictionary[tuple, _Store]" = weakref.WeakValueDictionary()
_stores_lock = threading.Lock()  # builds run in a thread


def _store_key(conf: m.CachePlugin, base_dir: Optional[str]) -> tuple:
    path = os.path.join(base_dir, conf.path) if conf.path and base_dir else conf.path
    return (conf.storage, conf.max_bytes, path, conf.redis, conf.max_object_bytes, conf.lock_timeout)


def storage_for(conf: m.CachePlugin, base_dir: Optional[str]) -> _Store:
    """The storage these settings describe: the existing one, or a new one."""
    key = _store_key(conf, base_dir)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            if conf.storage == "memory":
                storage: Storage = MemCache(conf.max_bytes, max_object_bytes=conf.max_object_bytes)
            elif conf.storage == "disk":
                storage = DiskCache(key[2], conf.max_bytes, max_object_bytes=conf.max_object_bytes)
            else:
                from ...cache import RedisCache

                storage = RedisCache(conf.redis, max_object_bytes=conf.max_object_bytes or 8 << 20)
            store = _stores[key] = _Store(storage, CacheLock(age_timeout=conf.lock_timeout,
                                                             wait_timeout=conf.lock_timeout,
                                                             stats=storage.stats), conf.storage)
    return store


def cluster_key(target: str, cluster: str) -> str:
    """The primary key of ``target`` as answered by ``cluster``, on a route that splits
    its traffic. It still starts with the target, so purges by prefix match it."""
    return f"{target} @{cluster}"


def live_storages() -> list[_Store]:
    """The storages some snapshot of this process uses (for purges)."""
    with _stores_lock:
        return list(_stores.values())


class RouteCache(Plugin):
    """A route's cache settings and storage, used by the proxy's cache hooks (it
    defines no plugin hook itself)."""

    def __init__(self, conf: m.CachePlugin, base_dir: Optional[str], clusters: tuple = ()) -> None:
        super().__init__()
        self.conf = conf
        self.store = storage_for(conf, base_dir)
        #: the clusters a split route's keys name (its own and the split's), else empty
        self.clusters = clusters
        statuses = frozenset(conf.statuses)
        ttl = conf.ttl or None
        self.defaults = CacheMetaDefaults(lambda status: ttl if status in statuses else None,
                                          conf.stale_while_revalidate, conf.stale_if_error)

    def enable(self, session: Any) -> None:
        """Turn the cache on for this request (``request_cache_filter``)."""
        store = self.store
        session.cache.enable(store.storage, lock=store.lock)

    def key(self, session: Any, ctx: Any) -> CacheKey:
        """The request's key (``cache_key_callback``): Host and target, plus the cluster
        chosen for it when the route splits its traffic."""
        key = default_cache_key(session.req_header)
        if self.clusters:
            key.primary = cluster_key(key.primary, ctx.cluster.name)
        return key

    def cacheable(self, session: Any, resp: Any) -> Any:
        """The entry's meta, or why it is not kept (``response_cache_filter``)."""
        return resp_cacheable(CacheControl.from_headers(resp.headers), resp,
                              b"authorization" in session.req_header.headers, self.defaults)


class CacheStatus(Plugin):
    """Tells the client how the cache answered, in the header ``name``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name.encode()

    async def response_filter(self, session, upstream_response, ctx) -> None:
        upstream_response.insert_header(self.name, _STATUS.get(session.cache.phase(), b"BYPASS"))


async def purge(caches: list, host: Optional[str], path: Optional[str], prefix: Optional[str]) -> int:
    """Remove from the storages of ``caches`` (RouteCaches) the entry of ``host`` +
    ``path`` (the request target; on split routes, each cluster's), or every entry
    under ``prefix`` (within ``host`` if given), or everything."""
    stores: dict = {}  # id(store) -> (store, the clusters its split routes name)
    for cache in caches:
        stores.setdefault(id(cache.store), (cache.store, set()))[1].update(cache.clusters)
    removed = 0
    for store, clusters in stores.values():
        storage = store.storage
        if path is not None:
            for primary in (path, *(cluster_key(path, c) for c in sorted(clusters))):
                removed += bool(await storage.purge(CacheKey(host or "", primary)))
        else:
            removed += await storage.purge_prefix(prefix or "", host)
    return removed
