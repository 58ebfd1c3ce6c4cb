"""HTTP/2 on both sides, on libnghttp2 when the native codec was built, else on the
``h2`` library (``codec`` says which; ``PROPYLON_H2_CODEC=native|h2`` chooses).

* ``server``: ``H2ServerConnection`` (one per client connection) and
  ``H2ServerStream`` (a ``DownstreamSession`` per request stream);
* ``options``: ``H2Options``, the limits of the server side;
* ``client``: ``H2ClientConnection`` (one per origin connection, shared) and
  ``H2ClientStream`` (an ``UpstreamExchange`` per stream);
* ``guard``: the frame-flood and rapid-reset guards; ``common``: header mapping
  and flow control;
* ``codec``: the codec interface and the ``h2`` one; ``_nghttp2``: the native one.

The limits and defences are described in docs/http2-limits.md.
"""

from .client import H2ClientConnection, H2ClientStream
from .guard import FrameGuard, ResetGuard
from .options import H2Options
from .server import H2ServerConnection, H2ServerStream

__all__ = ["FrameGuard", "H2ClientConnection", "H2ClientStream", "H2Options", "H2ServerConnection",
           "H2ServerStream", "ResetGuard"]
