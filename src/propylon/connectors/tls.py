"""TLS contexts for upstream connections, built once per distinct setting."""

from __future__ import annotations

import ssl
from functools import lru_cache
from typing import Optional

from ..errors import Error, ErrorType

__all__ = ["client_context", "check_alternative_cn", "remember_session", "SessionContext"]


class SessionContext(ssl.SSLContext):
    """A client context that resumes TLS sessions.

    The event loop creates each connection's TLS object through ``wrap_bio``;
    this context hands it the last session seen for the same server name, so a
    new connection to an origin skips the full handshake. Sessions are stored by
    :func:`remember_session` once a connection has one (TLS 1.3 delivers its
    tickets after the handshake, so connections are asked again when released).
    """

    sessions: dict

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):  # type: ignore[override]
        if session is None and not server_side and server_hostname:
            session = self.sessions.get(server_hostname)
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)


def remember_session(transport) -> None:
    """Keep the TLS session of ``transport`` for the next connection to the same name."""
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    if sslobj is None:
        return
    ctx = sslobj.context
    session = sslobj.session
    if isinstance(ctx, SessionContext) and session is not None and sslobj.server_hostname:
        if len(ctx.sessions) > 1024:
            ctx.sessions.clear()
        ctx.sessions[sslobj.server_hostname] = session


@lru_cache(maxsize=256)
def _context(verify_cert: bool, verify_hostname: bool, ca_file: Optional[str],
             cert_key: Optional[tuple], alpn: tuple) -> ssl.SSLContext:
    # What ssl.create_default_context() sets up, on a context that resumes sessions.
    ctx = SessionContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.sessions = {}
    ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as e:
            raise Error.because(ErrorType.INVALID_CERT, f"cannot load CA file {ca_file}", e).into_in() from None
    if not verify_cert:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif not verify_hostname:
        ctx.check_hostname = False
    if cert_key is not None:
        try:
            ctx.load_cert_chain(cert_key[0], cert_key[1])
        except (OSError, ssl.SSLError) as e:
            raise Error.because(ErrorType.INVALID_CERT, f"cannot load client certificate {cert_key[0]}", e).into_in() from None
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def client_context(opts, default_ca: Optional[str], cert_key) -> ssl.SSLContext:
    """The context for a peer's options: CA from the peer, else the server's
    ``ca_file``, else ``SSL_CERT_FILE``/the system store."""
    ca = opts.ca_file or default_ca
    ck = (cert_key.cert_file, cert_key.key_file) if cert_key is not None else None
    verify_hostname = opts.verify_hostname and not opts.alternative_cn
    return _context(opts.verify_cert, verify_hostname, ca, ck, tuple(opts.alpn.protocols()))


def _matches(pattern: str, name: str) -> bool:
    pattern = pattern.lower()
    name = name.lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def check_alternative_cn(conn, peer) -> None:
    """With ``alternative_cn`` set, accept the certificate if it names the SNI or that name."""
    sslobj = conn.transport.get_extra_info("ssl_object")
    cert = sslobj.getpeercert() if sslobj is not None else None
    names = [v for k, v in (cert or {}).get("subjectAltName", ()) if k == "DNS"]
    wanted = [n for n in (peer.sni, peer.settings().alternative_cn) if n]
    if not any(_matches(p, w) for p in names for w in wanted):
        conn.abort()
        raise Error.explain(ErrorType.INVALID_CERT,
                            f"certificate of {peer} names {names}, not {wanted}").into_up()


