"""Where a request is in the cache's state machine, and why it is not cached.

:class:`CachePhase` follows Pingora's ``CachePhase``:

* DISABLED (with a :class:`NoCacheReason`) → ``enable`` → UNINIT → key set → CACHE_KEY;
* from CACHE_KEY: BYPASS (skip the lookup), HIT (fresh entry), STALE (expired entry),
  or MISS (nothing, or the hit was refused);
* from STALE: EXPIRED (the origin sent a new response that is admitted), REVALIDATED
  (a 304 that keeps the entry, meta updated), REVALIDATED_NO_CACHE (a 304 whose new
  headers forbid storing: the stored copy is served but not updated), or
  STALE_UPDATING (the stale copy is served while one refresh runs in the background).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["CachePhase", "NoCacheReason"]


class CachePhase(enum.Enum):
    DISABLED = "disabled"
    UNINIT = "uninit"
    CACHE_KEY = "cache_key"
    BYPASS = "bypass"
    MISS = "miss"
    HIT = "hit"
    STALE = "stale"
    STALE_UPDATING = "stale_updating"
    EXPIRED = "expired"
    REVALIDATED = "revalidated"
    REVALIDATED_NO_CACHE = "revalidated_no_cache"

    def served_from_cache(self) -> bool:
        """True when the client's response comes out of storage (``Age`` is set)."""
        return self in _FROM_CACHE


_FROM_CACHE = frozenset((CachePhase.HIT, CachePhase.STALE, CachePhase.STALE_UPDATING,
                         CachePhase.REVALIDATED, CachePhase.REVALIDATED_NO_CACHE))


@dataclass(frozen=True, slots=True)
class NoCacheReason:
    """Why a response was not (or will not be) cached; the names are Pingora's.

    Use the class constants (``NoCacheReason.ORIGIN_NOT_CACHE`` ...) or
    :meth:`custom` for an application's own reason. ``str()`` gives the name for logs.
    """

    name: str

    NEVER_ENABLED: ClassVar["NoCacheReason"]
    ORIGIN_NOT_CACHE: ClassVar["NoCacheReason"]
    RESPONSE_TOO_LARGE: ClassVar["NoCacheReason"]
    PREDICTED_RESPONSE_TOO_LARGE: ClassVar["NoCacheReason"]
    STORAGE_ERROR: ClassVar["NoCacheReason"]
    INTERNAL_ERROR: ClassVar["NoCacheReason"]
    DEFERRED: ClassVar["NoCacheReason"]
    DECLINED_TO_UPSTREAM: ClassVar["NoCacheReason"]
    UPSTREAM_ERROR: ClassVar["NoCacheReason"]
    CACHE_LOCK_GIVE_UP: ClassVar["NoCacheReason"]
    CACHE_LOCK_TIMEOUT: ClassVar["NoCacheReason"]

    @classmethod
    def custom(cls, name: str) -> "NoCacheReason":
        return cls(name)

    def __str__(self) -> str:
        return self.name


for _const, _name in (
    ("NEVER_ENABLED", "NeverEnabled"),
    ("ORIGIN_NOT_CACHE", "OriginNotCache"),
    ("RESPONSE_TOO_LARGE", "ResponseTooLarge"),
    ("PREDICTED_RESPONSE_TOO_LARGE", "PredictedResponseTooLarge"),
    ("STORAGE_ERROR", "StorageError"),
    ("INTERNAL_ERROR", "InternalError"),
    ("DEFERRED", "Deferred"),
    ("DECLINED_TO_UPSTREAM", "DeclinedToUpstream"),
    ("UPSTREAM_ERROR", "UpstreamError"),
    ("CACHE_LOCK_GIVE_UP", "CacheLockGiveUp"),
    ("CACHE_LOCK_TIMEOUT", "CacheLockTimeout"),
):
    setattr(NoCacheReason, _const, NoCacheReason(_name))
del _const, _name
