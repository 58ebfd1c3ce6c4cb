"""Propylon City: the loopback lab of upstreams used by examples, tests and the demo.

It reproduces the seed guide's Docker lab on 127.0.0.1 (see DESIGN.md):

=================  ===================================  =========================================
member             address                              behaviour
=================  ===================================  =========================================
blue               127.0.0.1:18080                      ``Response from BLUE``, ``/echo`` ...
green              127.0.0.1:18081                      ``Response from GREEN``
advanced-http      127.0.0.1:18090                      caching headers by path
advanced-https     127.0.0.1:18443                      TLS, ALPN h2 + http/1.1, SNI reported
advanced-mtls      127.0.0.1:18444                      TLS wanting a lab client certificate
advanced-h2c       127.0.0.1:18082                      HTTP/2 cleartext (prior knowledge)
grpc               127.0.0.1:19000 (h2c), 19001 (TLS)   gRPC health + echo
uds                /tmp/propylon-lab/upstream.sock      HTTP over a Unix socket
forward-proxy      127.0.0.1:13128                      CONNECT tunnels to loopback targets
websocket          127.0.0.1:19091                      WebSocket echo
blackhole          127.0.0.1:18099                      TCP connects hang until timeout
=================  ===================================  =========================================

Ways to run it:

* ``python -m propylon.lab [--certs DIR] [--only blue,green] [--ports ephemeral]``
* :class:`Lab` - members as child processes, with stop/start/freeze/resume;
* :func:`serve_member` - one member inside the current event loop (any port);
* the pytest fixtures ``lab`` and ``lab_chaos`` (:mod:`propylon.lab.pytest_plugin`).

The lab is a test double for real upstreams and imports nothing else of Propylon.
"""

from ._base import Endpoint, Member, MemberConfig
from .certs import DEFAULT_CERTS_DIR, LabCerts, ensure_certs
from .process import Lab, LabProcess, LabStartError
from .registry import DEFAULT_UDS_PATH, MEMBERS, MemberSpec, serve_member

__all__ = [
    "Lab", "LabProcess", "LabStartError", "LabCerts", "ensure_certs", "DEFAULT_CERTS_DIR",
    "DEFAULT_UDS_PATH", "Endpoint", "Member", "MemberConfig", "MemberSpec", "MEMBERS",
    "serve_member",
]
