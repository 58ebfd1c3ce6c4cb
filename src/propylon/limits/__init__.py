"""Rate and concurrency limits (Pingora's ``pingora-limits``), local and Redis-backed.

Local, per process (synchronous, cheap enough to run on every request):

* :class:`Estimator` — count-min sketch, bounded memory for any number of keys;
* :class:`Rate` — per-key counts in lazily flipped windows and the previous window's
  rate; :data:`PROPORTIONAL_RATE_ESTIMATE_CALC_FN` / :meth:`Rate.sliding_rate` for a
  smoothed estimate;
* :class:`Inflight` / :class:`Guard` — per-key work in progress, released exactly once.

Shared by many workers or machines through Redis (async, same shapes):

* :class:`RedisRate` — fixed windows on the Redis server's clock;
* :class:`RedisInflight` / :class:`RedisGuard` — leased in-flight counts.

Both Redis limiters follow an ``on_error`` policy (``"open"`` or ``"closed"``) while
Redis is unreachable; fail-closed counts are :data:`UNAVAILABLE_COUNT`.
"""

from ._redis import UNAVAILABLE_COUNT, OnError
from .estimator import Estimator
from .inflight import Guard, Inflight
from .rate import PROPORTIONAL_RATE_ESTIMATE_CALC_FN, Rate, RateComponents
from .redis_inflight import RedisGuard, RedisInflight
from .redis_rate import RedisRate

__all__ = [
    "Estimator",
    "Rate",
    "RateComponents",
    "PROPORTIONAL_RATE_ESTIMATE_CALC_FN",
    "Inflight",
    "Guard",
    "RedisRate",
    "RedisInflight",
    "RedisGuard",
    "UNAVAILABLE_COUNT",
    "OnError",
]
