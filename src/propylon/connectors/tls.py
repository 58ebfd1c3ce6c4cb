"""TLS contexts for upstream connections, built once per distinct setting."""

from __future__ import annotations

import re
import ssl
from functools import lru_cache
from typing import Optional

from ..errors import Error, ErrorType

__all__ = ["client_context", "name_to_verify", "check_peer_name", "remember_session", "SessionContext"]


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


def name_to_verify(sni: Optional[str]) -> Optional[str]:
    """The name an upstream certificate must carry for ``sni``.

    Usually the SNI itself. Service names often have an underscore in their
    leftmost label (``my_svc.api.example``), which no hostname may contain, so a
    wildcard certificate (``*.api.example``) would never match them; like Pingora,
    the certificate is then checked against that label with hyphens
    (``my-svc.api.example``). Only the leftmost label changes, and only in a name
    of three labels or more (a wildcard never covers a bare domain); the SNI sent
    is unchanged.
    """
    if not sni:
        return sni
    head, dot, rest = sni.partition(".")
    if "_" not in head or "." not in rest:
        return sni
    return head.replace("_", "-") + dot + rest


def _own_name_check(opts, sni: Optional[str]) -> bool:
    """Whether the certificate's names are checked here after the handshake
    (``alternative_cn``, or a name to verify that differs from the SNI) rather
    than by OpenSSL against the SNI."""
    return opts.verify_cert and opts.verify_hostname and (
        bool(opts.alternative_cn) or name_to_verify(sni) != sni)


def client_context(opts, default_ca: Optional[str], cert_key, sni: Optional[str] = None) -> ssl.SSLContext:
    """The context for a peer's options: CA from the peer, else the server's
    ``ca_file``, else ``SSL_CERT_FILE``/the system store. OpenSSL checks the
    certificate against ``sni`` unless :func:`check_peer_name` has to."""
    ca = opts.ca_file or default_ca
    ck = (cert_key.cert_file, cert_key.key_file) if cert_key is not None else None
    verify_hostname = opts.verify_hostname and not _own_name_check(opts, sni)
    return _context(opts.verify_cert, verify_hostname, ca, ck, tuple(opts.alpn.protocols()))


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def _matches(pattern: str, name: str) -> bool:
    """A certificate name against a host name (RFC 6125): exact, or a leading
    ``*.`` standing for one whole letters-digits-hyphens label, as OpenSSL allows."""
    pattern = pattern.lower()
    name = name.lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return rest == pattern[2:] and _LABEL.fullmatch(head) is not None
    return pattern == name


def check_peer_name(conn, peer, sni: Optional[str]) -> None:
    """After the handshake: accept the certificate only if it names
    :func:`name_to_verify` of ``sni`` or the peer's ``alternative_cn``; does nothing
    when OpenSSL already checked the name (see :func:`client_context`)."""
    opts = peer.settings()
    if not _own_name_check(opts, sni):
        return
    sslobj = conn.transport.get_extra_info("ssl_object")
    cert = sslobj.getpeercert() if sslobj is not None else None
    names = [v for k, v in (cert or {}).get("subjectAltName", ()) if k == "DNS"]
    wanted = [n for n in (name_to_verify(sni), opts.alternative_cn) if n]
    if not any(_matches(p, w) for p in names for w in wanted):
        conn.abort()
        raise Error.explain(ErrorType.INVALID_CERT,
                            f"certificate of {peer} names {names}, not {wanted}").into_up()
