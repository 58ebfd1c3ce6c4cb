"""HTTP/2 on both sides, built on the ``h2`` library.

* ``server``: ``H2ServerConnection`` (one per client connection) and
  ``H2ServerStream`` (a ``DownstreamSession`` per request stream), limits in
  ``H2Options``;
* ``client``: ``H2ClientConnection`` (one per origin connection, shared) and
  ``H2ClientStream`` (an ``UpstreamExchange`` per stream);
* ``guard``: the frame-flood and rapid-reset guards; ``common``: header mapping
  and flow control.

The limits and defences are described in docs/http2-limits.md.
"""

from .client import H2ClientConnection, H2ClientStream
from .guard import ResetGuard
from .server import H2Options, H2ServerConnection, H2ServerStream

__all__ = ["H2ClientConnection", "H2ClientStream", "H2Options", "H2ServerConnection",
           "H2ServerStream", "ResetGuard"]
