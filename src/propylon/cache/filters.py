"""Deciding whether and for how long a response may be stored (Pingora's ``filters``).

:func:`resp_cacheable` is Pingora's ``resp_cacheable`` with two differences, both
RFC 9111:

* ``Expires`` is read relative to the response's own ``Date`` when it has one
  (``fresh_until = now + (Expires - Date)``, §4.2.1), so a skewed origin clock does not
  shift freshness; without ``Date`` it is an absolute time, as in Pingora;
* ``Vary: *`` is not cacheable (§4.1: such a response never matches a later request).

Otherwise, as Pingora:

* a request with ``Authorization`` is cached only if ``Cache-Control`` has ``public``,
  ``s-maxage`` or ``must-revalidate`` (§3.5);
* ``no-store`` or a bare ``private`` → not cached;
* the TTL comes from ``Cache-Control`` (s-maxage, then max-age; bare ``no-cache`` → 0),
  else from one ``Expires`` field (several are ignored; an unparseable one means
  "already expired"), else from ``defaults.fresh_sec(status)``; no TTL → not cached.
  The status is checked only by the defaults;
* TTL 0 stores the response already stale (``fresh_until = now - 1``), so every use
  revalidates it;
* stale-while-revalidate and stale-if-error come from ``Cache-Control`` if given, else
  from the defaults, and are 0 when the origin forbids serving stale;
* the origin's ``Age`` is not subtracted;
* fields named by ``private=``/``no-cache=`` are dropped from the stored head.
"""

from __future__ import annotations

import email.utils
import time
from typing import Optional, Union

from ..protocols.http.header import ResponseHeader
from .cache_control import CacheControl, Cacheable
from .key import vary_names
from .meta import CacheMeta, CacheMetaDefaults
from .phase import NoCacheReason

__all__ = ["resp_cacheable", "parse_http_date"]


def parse_http_date(value: bytes) -> Optional[float]:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime) as epoch seconds, or None."""
    try:
        parsed = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.timestamp()


def resp_cacheable(cc: Optional[CacheControl], resp: ResponseHeader, auth_present: bool,
                   defaults: CacheMetaDefaults, now: Optional[float] = None
                   ) -> Union[CacheMeta, NoCacheReason]:
    """A :class:`CacheMeta` for ``resp`` if it may be stored, else the reason it may not.

    ``cc`` is the response's parsed ``Cache-Control`` (None if it has none),
    ``auth_present`` whether the request carried ``Authorization``. The meta's header
    is a copy of ``resp`` without the fields ``private=``/``no-cache=`` list.
    """
    if now is None:
        now = time.time()
    if auth_present and (cc is None or not cc.allow_caching_authorized_req()):
        return NoCacheReason.ORIGIN_NOT_CACHE
    if cc is not None and cc.is_cacheable() is Cacheable.NO:
        return NoCacheReason.ORIGIN_NOT_CACHE
    headers = resp.headers
    vary = headers.get_all_bytes(b"vary")
    if vary and vary_names(vary) is None:
        return NoCacheReason.ORIGIN_NOT_CACHE

    fresh_until = _fresh_until(cc, resp, defaults, now)
    if fresh_until is None:
        return NoCacheReason.ORIGIN_NOT_CACHE

    if cc is not None and not cc.serve_stale_allowed():
        swr = sie = 0
    else:
        swr = cc.stale_while_revalidate() if cc is not None else None
        sie = cc.stale_if_error() if cc is not None else None
        if swr is None:
            swr = defaults.stale_while_revalidate_sec
        if sie is None:
            sie = defaults.stale_if_error_sec

    stored = resp.copy()
    if cc is not None:
        cc.strip_listed_fields(stored.headers)
    return CacheMeta(fresh_until, now, now, swr, sie, stored)


def _fresh_until(cc: Optional[CacheControl], resp: ResponseHeader, defaults: CacheMetaDefaults,
                 now: float) -> Optional[float]:
    ttl: Optional[float] = cc.fresh_sec() if cc is not None else None
    if ttl is None:
        expires = resp.headers.get_all_bytes(b"expires")
        if len(expires) == 1:
            at = parse_http_date(expires[0])
            if at is None:
                return now - 1  # an invalid Expires means "already expired" (RFC 9111 §5.3)
            date_values = resp.headers.get_all_bytes(b"date")
            date = parse_http_date(date_values[0]) if len(date_values) == 1 else None
            ttl = at - (date if date is not None else now)
    if ttl is None:
        ttl = defaults.fresh_sec(resp.status)
        if ttl is None:
            return None
    if ttl <= 0:
        return now - 1
    return now + ttl
