"""TLS: settings for listening endpoints (upstream TLS lives in ``propylon.connectors.tls``)."""

from .settings import TlsConfigError, TlsSettings, tls_digest

__all__ = ["TlsSettings", "TlsConfigError", "tls_digest"]
