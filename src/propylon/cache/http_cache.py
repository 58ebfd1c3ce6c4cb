"""``HttpCache``: one request's cache state machine (``session.cache``, Pingora's ``HttpCache``).

The engine creates one per request, disabled (``NeverEnabled``); the application's
``request_cache_filter`` calls :meth:`enable`. Then the engine drives it; every
transition below is a method, and a method called in a phase it does not apply to
raises ``RuntimeError`` naming both (an engine bug, never a client's)::

    enable() ─────────────► UNINIT ─ set_cache_key() ─► CACHE_KEY
    CACHE_KEY ─ bypass() ─► BYPASS
    CACHE_KEY ─ cache_found(hit, fresh) ─► HIT | STALE
    CACHE_KEY | BYPASS | STALE ─ cache_miss() ─► MISS
    STALE ─ set_miss_handler() ─► EXPIRED     (a new response replaces the entry)
    STALE ─ revalidate_cache_meta() ─► REVALIDATED
    STALE ─ revalidate_uncacheable() ─► REVALIDATED_NO_CACHE
    STALE ─ set_stale_updating() ─► STALE_UPDATING
    any ─ disable(reason) ─► DISABLED(reason)   (releases the write lock, drops the fill)

The write lock: :meth:`lock` takes it or returns a :class:`ReadLock` to wait on
(:meth:`wait_lock`, which turns a wait timeout or a give-up into ``disable``). The
permit is released with DONE as soon as the miss handler exists (readers then stream
the fill), with GIVE_UP when the response is not cacheable (OriginNotCache,
ResponseTooLarge, PredictedResponseTooLarge) and with TRANSIENT_ERROR for any other
reason to disable, so one of the waiting readers tries to fill in its place.

Counters (``storage.stats``): ``hits`` in :meth:`cache_found` for a fresh entry,
``misses`` in :meth:`cache_miss`, ``revalidated`` in :meth:`revalidate_cache_meta`,
``stale_served`` in :meth:`serve_stale` (the engine calls it when it sends a stale
entry: SWR, SIE, or an uncacheable 304).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from ..protocols.http.header import HeaderMap, ResponseHeader
from .eviction import EvictionManager
from .key import CacheKey, variance_from_vary
from .lock import CacheLock, LockStatus, ReadLock, WritePermit
from .meta import CacheMeta
from .phase import CachePhase, NoCacheReason
from .predictor import Predictor
from .storage import LOOKUP_PENDING, CacheHit, MissHandler, ObjectTooLarge, Storage

__all__ = ["HttpCache", "VaryFilter", "merge_304_header", "default_vary_filter"]

VaryFilter = Callable[[CacheMeta, HeaderMap], Optional[bytes]]
"""(stored meta, request headers) → the request's variance; default: from ``Vary``."""

# The phases every request that uses the cache goes through, as module globals:
# ``CachePhase.X`` goes through the enum's Python metaclass on every read (about a
# thousand instructions), a global is one dict lookup.
_DISABLED, _UNINIT, _CACHE_KEY, _BYPASS, _HIT, _STALE = (
    CachePhase.DISABLED, CachePhase.UNINIT, CachePhase.CACHE_KEY, CachePhase.BYPASS, CachePhase.HIT,
    CachePhase.STALE)

_GIVE_UP = frozenset((NoCacheReason.ORIGIN_NOT_CACHE, NoCacheReason.RESPONSE_TOO_LARGE,
                      NoCacheReason.PREDICTED_RESPONSE_TOO_LARGE))
RESPONSE_TOO_LARGE_STREAMED = NoCacheReason.custom("response too large")


def default_vary_filter(meta: CacheMeta, req_headers: HeaderMap) -> Optional[bytes]:
    return variance_from_vary(meta.header.headers.get_all_bytes(b"vary"), req_headers)


class HttpCache:
    """The cache state of one request. See the module docstring for the phases."""

    __slots__ = ("_phase", "_reason", "storage", "eviction", "predictor", "_lock", "_key", "_hit",
                 "_miss", "_permit", "_lock_wait", "_max_file_size")

    def __init__(self) -> None:
        self._phase = _DISABLED
        self._reason: Optional[NoCacheReason] = NoCacheReason.NEVER_ENABLED
        self.storage: Optional[Storage] = None
        self.eviction: Optional[EvictionManager] = None
        self.predictor: Optional[Predictor] = None
        self._lock: Optional[CacheLock] = None
        self._key: Optional[CacheKey] = None
        self._hit: Optional[CacheHit] = None
        self._miss: Optional[MissHandler] = None
        self._permit: Optional[WritePermit] = None
        self._lock_wait: Optional[float] = None
        self._max_file_size: Optional[int] = None

    # --- enabling ----------------------------------------------------------------------
    def enable(self, storage: Storage, eviction: Optional[EvictionManager] = None,
               predictor: Optional[Predictor] = None, lock: Optional[CacheLock] = None) -> None:
        """Turn caching on for this request (only once, from the never-enabled state).

        ``eviction`` is kept for applications that manage an unbounded storage
        themselves (MemCache, DiskCache bound themselves). With a ``predictor``,
        resources recently found uncacheable skip the lock (see :meth:`lock`), and
        :meth:`disable` / :meth:`set_miss_handler` keep it up to date.
        """
        if self._phase is not _DISABLED or self._reason is not NoCacheReason.NEVER_ENABLED:
            raise RuntimeError(f"enable() in phase {self._phase.name}; caching is enabled once per request")
        self.storage, self.eviction, self.predictor, self._lock = storage, eviction, predictor, lock
        self._phase, self._reason = _UNINIT, None

    def phase(self) -> CachePhase:
        return self._phase

    def enabled(self) -> bool:
        """False when disabled or bypassed."""
        return self._phase is not _DISABLED and self._phase is not _BYPASS

    def no_cache_reason(self) -> Optional[NoCacheReason]:
        return self._reason

    def set_max_file_size_bytes(self, n: int) -> None:
        """Bodies larger than ``n`` bytes are not cached (ResponseTooLarge)."""
        if n <= 0:
            raise ValueError(f"max file size must be positive, got {n}")
        self._max_file_size = n

    def max_file_size_bytes(self) -> Optional[int]:
        return self._max_file_size

    def disable(self, reason: NoCacheReason) -> None:
        """Stop caching this request: release the write lock, drop any fill."""
        if self._miss is not None:
            self._miss.abandon()
            self._miss = None
        if self.predictor is not None and self._key is not None:
            self.predictor.mark_uncacheable(self._key, reason)
        self.release_write_lock(LockStatus.GIVE_UP if reason in _GIVE_UP else LockStatus.TRANSIENT_ERROR)
        self._phase, self._reason = _DISABLED, reason

    def bypass(self) -> None:
        """Skip the lookup; the response may still be admitted later (Pingora's bypass)."""
        self._expect("bypass", CachePhase.CACHE_KEY)
        self._phase = CachePhase.BYPASS

    # --- key and lookup ----------------------------------------------------------------
    def set_cache_key(self, key: CacheKey) -> None:
        if self._phase is not _UNINIT:
            self._expect("set_cache_key", CachePhase.UNINIT)
        self._key = key
        self._phase = _CACHE_KEY

    def cache_key(self) -> CacheKey:
        if self._key is None:
            raise RuntimeError("no cache key set")
        return self._key

    async def cache_lookup(self, req_headers: HeaderMap,
                           vary_filter: Optional[VaryFilter] = None) -> Optional[CacheHit]:
        """Look the key up; when the resource varies, select this request's variant
        (``vary_filter``, default: the request's values of the fields ``Vary`` names)
        and look up again. Returns what was found; call :meth:`cache_found` or
        :meth:`cache_miss` with it."""
        hit = self.cache_lookup_now(req_headers, vary_filter)
        if hit is not LOOKUP_PENDING:
            return hit
        storage, key = self.storage, self._key
        hit = await storage.lookup(key)
        if hit is not None and hit.body is None:
            variance = (vary_filter or default_vary_filter)(hit.meta, req_headers)
            if variance is None:
                return None
            key.set_variance(variance)
            hit = await storage.lookup(key)
            if hit is not None and hit.body is None:
                return None  # a record where a variant should be: treat as a miss
        return hit

    def cache_lookup_now(self, req_headers: HeaderMap, vary_filter: Optional[VaryFilter] = None):
        """:meth:`cache_lookup` without waiting, for storages that can answer from
        memory: what was found, or :data:`~propylon.cache.storage.LOOKUP_PENDING` when
        the storage needs I/O (then await :meth:`cache_lookup`)."""
        if self._phase is not _CACHE_KEY:
            self._expect("cache_lookup", CachePhase.CACHE_KEY)
        storage, key = self.storage, self._key
        hit = storage.lookup_now(key)
        if hit is None or hit is LOOKUP_PENDING or hit.body is not None:
            return hit
        variance = (vary_filter or default_vary_filter)(hit.meta, req_headers)
        if variance is None:
            return None
        key.set_variance(variance)
        hit = storage.lookup_now(key)
        if hit is not None and hit is not LOOKUP_PENDING and hit.body is None:
            return None  # a record where a variant should be: treat as a miss
        return hit

    def cache_found(self, hit: CacheHit, fresh: Optional[bool] = None) -> None:
        """Use ``hit``: HIT if fresh (default: by its meta now), else STALE."""
        if self._phase is not _CACHE_KEY:
            self._expect("cache_found", CachePhase.CACHE_KEY)
        if fresh is None:
            fresh = hit.meta.is_fresh()
        self._hit = hit
        if fresh:
            self._phase = _HIT
            self.storage.stats.hits += 1
        else:
            self._phase = _STALE

    def cache_miss(self) -> None:
        self._expect("cache_miss", CachePhase.CACHE_KEY, CachePhase.BYPASS, CachePhase.STALE)
        self._phase = CachePhase.MISS
        self.storage.stats.misses += 1

    def cache_hit(self) -> Optional[CacheHit]:
        """The entry found (HIT, STALE and the phases that follow STALE)."""
        return self._hit

    def cache_meta(self) -> Optional[CacheMeta]:
        return self._hit.meta if self._hit is not None else None

    def serve_stale(self) -> None:
        """Count a stale entry sent to the client."""
        self.storage.stats.stale_served += 1

    def hand_over_refresh(self) -> "HttpCache":
        """Stale-while-revalidate: a new ``HttpCache`` for the background request that
        refreshes the entry. It takes this request's write lock and the stale entry
        (phase STALE); this request keeps the entry to serve it."""
        self._expect("hand_over_refresh", CachePhase.STALE)
        if self._permit is None and self._lock is not None:
            raise RuntimeError("hand_over_refresh() without the write lock")
        other = HttpCache()
        other.enable(self.storage, self.eviction, self.predictor, self._lock)
        other.set_cache_key(self.cache_key())
        other._max_file_size = self._max_file_size
        other._hit = self._hit
        other._phase = CachePhase.STALE
        other._permit, self._permit = self._permit, None
        return other

    def set_stale_updating(self) -> None:
        """The stale copy is served while a background refresh runs."""
        self._expect("set_stale_updating", CachePhase.STALE)
        self._phase = CachePhase.STALE_UPDATING
        self.serve_stale()

    # --- the write lock ----------------------------------------------------------------
    def lock(self) -> Optional[ReadLock]:
        """Take the key's write lock; returns a :class:`ReadLock` when another request
        fills the key (wait on it with :meth:`wait_lock`), None when this request fills
        it, there is no lock, or the predictor says the resource is not cacheable (then
        nobody waits for it and nobody writes)."""
        if self._lock is None or self._permit is not None:
            return None
        if self.predictor is not None and not self.predictor.cacheable_prediction(self.cache_key()):
            return None
        got = self._lock.lock(self.cache_key())
        if isinstance(got, WritePermit):
            self._permit = got
            return None
        return got

    async def wait_lock(self, read_lock: ReadLock) -> LockStatus:
        """Wait for the writer; a timeout or a give-up disables caching for this request
        (it goes upstream uncached). DONE: look up again (phase back to CACHE_KEY);
        TRANSIENT_ERROR, DANGLING, AGE_TIMEOUT: call :meth:`lock` again."""
        t0 = time.monotonic()
        status = await read_lock.wait()
        self._lock_wait = (self._lock_wait or 0.0) + time.monotonic() - t0
        if status is LockStatus.WAIT_TIMEOUT:
            self.disable(NoCacheReason.CACHE_LOCK_TIMEOUT)
        elif status is LockStatus.GIVE_UP:
            self.disable(NoCacheReason.CACHE_LOCK_GIVE_UP)
        elif self._phase in (CachePhase.MISS, CachePhase.STALE):
            self._phase = CachePhase.CACHE_KEY
            self._hit = None
        return status

    def lock_duration(self) -> Optional[float]:
        """Seconds this request waited on the cache lock (None: it never waited)."""
        return self._lock_wait

    def has_lock(self) -> bool:
        """Whether caching was enabled with a :class:`CacheLock`."""
        return self._lock is not None

    def is_writer(self) -> bool:
        return self._permit is not None and not self._permit.released()

    def release_write_lock(self, status: LockStatus) -> None:
        if self._permit is not None:
            self._permit.release(status)
            self._permit = None

    # --- filling -------------------------------------------------------------------------
    async def set_miss_handler(self, meta: CacheMeta, content_length: Optional[int] = None) -> bool:
        """Admit the upstream response ``meta`` (from ``resp_cacheable``) and start the fill.

        Selects the variant first when the response varies (``meta.variance`` must be
        set by the engine from ``cache_vary_filter``; see :meth:`set_variance`). Returns
        False, with caching disabled (ResponseTooLarge), when ``content_length`` is over
        the max file size. Releases the write lock as DONE: readers stream the fill.
        """
        self._expect("set_miss_handler", CachePhase.MISS, CachePhase.STALE)
        limit = self._max_file_size
        if limit is not None and content_length is not None and content_length > limit:
            self.disable(NoCacheReason.RESPONSE_TOO_LARGE)
            return False
        if self._phase is CachePhase.STALE:
            self._phase = CachePhase.EXPIRED
        self._miss = await self.storage.get_miss_handler(self.cache_key(), meta)
        if self.predictor is not None:
            self.predictor.mark_cacheable(self._key)
        self.release_write_lock(LockStatus.DONE)
        return True

    def is_filling(self) -> bool:
        """True between :meth:`set_miss_handler` and the end of the fill."""
        return self._miss is not None

    def set_variance(self, variance: Optional[bytes]) -> None:
        """Select the variant the upstream response belongs to (before the fill)."""
        self.cache_key().set_variance(variance)

    async def write_body(self, chunk: bytes) -> bool:
        """Add a body chunk to the fill; False (and caching disabled) when the body is
        over the max file size or the storage's own limit."""
        miss = self._miss
        if miss is None:
            return False
        limit = self._max_file_size
        if limit is not None and miss.size + len(chunk) > limit:
            self.disable(RESPONSE_TOO_LARGE_STREAMED)
            return False
        try:
            await miss.write_body(chunk)
        except ObjectTooLarge:
            self._miss = None
            self.disable(RESPONSE_TOO_LARGE_STREAMED)
            return False
        return True

    async def finish_miss_handler(self) -> None:
        """The body ended: the fill becomes a stored entry."""
        miss, self._miss = self._miss, None
        if miss is not None:
            await miss.finish()

    # --- revalidation (304) ---------------------------------------------------------------
    async def revalidate_cache_meta(self, meta: CacheMeta) -> bool:
        """A 304 confirmed the stale entry: store ``meta`` (``created`` and variance of
        the stored entry are kept), serve the stored body. Returns whether the storage
        still had the entry."""
        self._expect("revalidate_cache_meta", CachePhase.STALE, CachePhase.STALE_UPDATING)
        old = self._hit.meta
        meta.created = old.created
        meta.variance = old.variance
        meta.body_len = old.body_len
        ok = await self.storage.update_meta(self.cache_key(), meta)
        self._hit = CacheHit(meta, self._hit.body, self._hit.complete)
        self._phase = CachePhase.REVALIDATED
        self.storage.stats.revalidated += 1
        self.release_write_lock(LockStatus.DONE)
        return ok

    def revalidate_uncacheable(self, reason: NoCacheReason) -> None:
        """A 304 whose headers forbid storing: serve the stored copy without updating it."""
        self._expect("revalidate_uncacheable", CachePhase.STALE, CachePhase.STALE_UPDATING)
        self._phase = CachePhase.REVALIDATED_NO_CACHE
        self._reason = reason
        self.release_write_lock(LockStatus.GIVE_UP)

    # --- internals -------------------------------------------------------------------------
    def _expect(self, what: str, *phases: CachePhase) -> None:
        # The hot transitions test their one phase inline and call this only to fail.
        if self._phase not in phases:
            allowed = ", ".join(p.name for p in phases)
            raise RuntimeError(f"cache: {what}() in phase {self._phase.name} (allowed in {allowed})")


_MERGED_ON_304 = frozenset((b"cache-control", b"expires", b"cache-tag", b"surrogate-key", b"cdn-cache-control",
                            b"etag", b"date", b"last-modified"))


def merge_304_header(stored: ResponseHeader, not_modified: ResponseHeader) -> ResponseHeader:
    """A copy of the stored head with the freshness and validator fields of a 304."""
    merged = stored.copy()
    fresh = [(n, v) for n, v in not_modified.headers.raw_items() if n.lower() in _MERGED_ON_304]
    for name in {n.lower() for n, _ in fresh}:
        merged.headers.remove(name)
    for name, value in fresh:
        merged.headers.append(name, value)
    return merged
