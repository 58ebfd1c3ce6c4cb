"""Edge security building blocks for ``request_filter`` and friends.

* :class:`IpAccessList` — allow/deny lists of addresses and CIDR ranges (IPv4, IPv6);
* :class:`BearerAuth`, :class:`BasicAuth` and the parsers behind them, returning an
  :class:`AuthResult` that carries the status (401/403) and challenge to answer with;
* :class:`BodySizeLimit` — declared and streamed request body size limits (413).

None of these touch the network; they decide, and the HTTP layer answers.
"""

from .auth import (
    AuthOutcome,
    AuthResult,
    BasicAuth,
    BearerAuth,
    constant_time_equals,
    parse_basic,
    parse_bearer,
)
from .ip_access import IpAccessList
from .size import BodySizeLimit

__all__ = [
    "IpAccessList",
    "AuthOutcome",
    "AuthResult",
    "BearerAuth",
    "BasicAuth",
    "parse_bearer",
    "parse_basic",
    "constant_time_equals",
    "BodySizeLimit",
]
