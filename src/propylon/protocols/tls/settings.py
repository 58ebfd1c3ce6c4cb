"""TLS for listening endpoints: certificates, SNI, ALPN and client certificates.

::

    settings = TlsSettings.intermediate("server.crt", "server.key")
    settings.enable_h2()                                   # ALPN: h2, http/1.1
    settings.add_certificate("api.example.test", "api.crt", "api.key")   # chosen by SNI
    settings.verify_clients("clients-ca.crt")              # downstream mTLS
    service.add_tls_with_settings("127.0.0.1:6443", settings)

``intermediate`` follows Mozilla's "intermediate" profile: TLS 1.2 and 1.3 only,
forward-secret AEAD ciphers for TLS 1.2. A certificate or key that cannot be
loaded raises :class:`TlsConfigError` naming the file, when the settings are built
(at start-up), never on the first connection.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Optional

from ..digest import TlsDigest

__all__ = ["TlsSettings", "TlsConfigError", "tls_digest"]

# Mozilla's intermediate configuration (TLS 1.2 part; TLS 1.3 suites are fixed by OpenSSL).
INTERMEDIATE_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
))


class TlsConfigError(ValueError):
    """A certificate, key or CA file could not be used; the message names it."""


@dataclass
class TlsSettings:
    """How a listening endpoint does TLS. Build with :meth:`intermediate`."""

    cert_file: str
    key_file: str
    alpn: list[str] = field(default_factory=lambda: ["http/1.1"])
    sni_certs: dict[str, tuple[str, str]] = field(default_factory=dict)
    client_ca_file: Optional[str] = None
    client_cert_required: bool = True
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2

    @classmethod
    def intermediate(cls, cert_file: str, key_file: str) -> "TlsSettings":
        """Settings with Mozilla's intermediate profile and one default certificate."""
        return cls(str(cert_file), str(key_file))

    def enable_h2(self) -> None:
        """Offer HTTP/2 by ALPN (``h2``, then ``http/1.1``)."""
        self.alpn = ["h2", "http/1.1"]

    def add_certificate(self, server_name: str, cert_file: str, key_file: str) -> None:
        """Serve this certificate to clients asking for ``server_name`` by SNI
        (``*.example.test`` matches one label)."""
        self.sni_certs[server_name.lower()] = (str(cert_file), str(key_file))

    def verify_clients(self, ca_file: str, required: bool = True) -> None:
        """Ask clients for a certificate signed by ``ca_file`` (downstream mTLS);
        with ``required`` a client without one is refused in the handshake."""
        self.client_ca_file = str(ca_file)
        self.client_cert_required = required

    # --- building -----------------------------------------------------------------
    def _one_context(self, cert_file: str, key_file: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.min_version
        ctx.set_ciphers(INTERMEDIATE_CIPHERS)
        ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
        for path, what in ((cert_file, "certificate"), (key_file, "key")):
            if not os.path.isfile(path):
                raise TlsConfigError(f"TLS {what} file {path} does not exist")
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, OSError) as e:
            raise TlsConfigError(f"cannot load TLS certificate {cert_file} with key {key_file}: {e}") from None
        if self.client_ca_file:
            if not os.path.isfile(self.client_ca_file):
                raise TlsConfigError(f"client CA file {self.client_ca_file} does not exist")
            try:
                ctx.load_verify_locations(cafile=self.client_ca_file)
            except (ssl.SSLError, OSError) as e:
                raise TlsConfigError(f"cannot load client CA file {self.client_ca_file}: {e}") from None
            ctx.verify_mode = ssl.CERT_REQUIRED if self.client_cert_required else ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(self.alpn)
        return ctx

    def build_context(self) -> ssl.SSLContext:
        """The ``ssl.SSLContext`` for the listener (certificates loaded now)."""
        default = self._one_context(self.cert_file, self.key_file)
        by_name = {name: self._one_context(c, k) for name, (c, k) in self.sni_certs.items()}

        def pick(sslobj, server_name: Optional[str], _ctx) -> None:
            if server_name:
                try:
                    sslobj.propylon_sni = server_name
                except AttributeError:
                    pass
                name = server_name.lower()
                ctx = by_name.get(name)
                if ctx is None and "." in name:
                    ctx = by_name.get("*." + name.split(".", 1)[1])
                if ctx is not None:
                    sslobj.context = ctx
            return None

        default.sni_callback = pick
        return default


def tls_digest(transport) -> Optional[TlsDigest]:
    """What the handshake settled on a connection, or None for plain TCP."""
    sslobj = transport.get_extra_info("ssl_object")
    if sslobj is None:
        return None
    cipher = sslobj.cipher()
    return TlsDigest(
        version=sslobj.version(),
        cipher=cipher[0] if cipher else None,
        sni=getattr(sslobj, "propylon_sni", None) or sslobj.server_hostname,
        alpn=sslobj.selected_alpn_protocol(),
        peer_cert=sslobj.getpeercert() or None,
        peer_cert_der=sslobj.getpeercert(binary_form=True),
        session_reused=sslobj.session_reused,
    )
