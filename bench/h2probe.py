"""One HTTP/2 request over TLS, to learn whether a server speaks HTTP/2 at all.

h2load against a server that takes the connection but never answers in HTTP/2 just
reports zero requests; asking first lets the harness say what is missing instead.
"""

from __future__ import annotations

import socket
import ssl
import time

__all__ = ["h2_get_status"]


def h2_get_status(port: int, path: str = "/", timeout: float = 3.0) -> int:
    """GET ``https://127.0.0.1:port/path`` over HTTP/2; return the response status.

    Raises ``OSError`` (including ``TimeoutError``) or ``RuntimeError`` naming what
    went wrong: no ALPN h2, connection closed, no response within ``timeout`` s.
    """
    import h2.config
    import h2.connection
    import h2.events

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            if tls.selected_alpn_protocol() != "h2":
                raise RuntimeError(f"ALPN chose {tls.selected_alpn_protocol()!r}, not h2")
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            conn.send_headers(1, [(":method", "GET"), (":scheme", "https"),
                                  (":authority", f"127.0.0.1:{port}"), (":path", path)],
                              end_stream=True)
            tls.sendall(conn.data_to_send())
            status: int | None = None
            while time.monotonic() < deadline:
                tls.settimeout(max(0.01, deadline - time.monotonic()))
                data = tls.recv(65536)
                if not data:
                    raise RuntimeError("connection closed without an HTTP/2 response")
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.StreamReset):
                        raise RuntimeError(f"stream reset (error code {event.error_code})")
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        raise RuntimeError(f"GOAWAY (error code {event.error_code})")
                    elif isinstance(event, h2.events.StreamEnded) and status is not None:
                        return status
                out = conn.data_to_send()
                if out:
                    tls.sendall(out)
            raise TimeoutError(f"no HTTP/2 response within {timeout:.0f}s")
