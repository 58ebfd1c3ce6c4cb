"""The lab's own certificate authority and the certificates it signs.

At start the lab makes (or reuses, if still valid) a small PKI in one directory:

==================  ============================================================
``ca.crt/.key``     the lab root CA; clients trust it with ``--cacert ca.crt``
``upstream.crt/.key`` upstream servers: ``advanced.propylon.test``,
                    ``*.api.propylon.test``, ``grpc.propylon.test``
``server.crt/.key`` the proxy's own TLS listeners: ``localhost``, ``127.0.0.1``,
                    ``::1``, ``dev.propylon.test``
``client.crt/.key`` a client certificate for upstream mutual TLS
==================  ============================================================

Keys are ECDSA P-256 (fast to make, understood by curl, OpenSSL and gRPC). Nothing
here is ever committed: the files are made at run time, private keys with mode 0600.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["LabCerts", "ensure_certs", "DEFAULT_CERTS_DIR"]

log = logging.getLogger(__name__)

DEFAULT_CERTS_DIR = Path("/tmp/propylon-lab/certs")

UPSTREAM_NAMES = ("advanced.propylon.test", "*.api.propylon.test", "grpc.propylon.test")
SERVER_NAMES = ("localhost", "dev.propylon.test", "127.0.0.1", "::1")
CLIENT_NAME = "client.propylon.test"

# Leaf certificates are remade when they have less than this left.
_MIN_REMAINING = datetime.timedelta(days=2)
_CA_LIFETIME = datetime.timedelta(days=3650)
_LEAF_LIFETIME = datetime.timedelta(days=365)


@dataclass(frozen=True)
class LabCerts:
    """Paths of the lab's certificate files inside one directory."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        """The root CA certificate (PEM); trust it to verify every lab certificate."""
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The root CA private key (PEM)."""
        return self.dir / "ca.key"

    @property
    def upstream_cert(self) -> Path:
        """Certificate of the TLS upstreams (advanced / *.api / grpc .propylon.test)."""
        return self.dir / "upstream.crt"

    @property
    def upstream_key(self) -> Path:
        """Private key of :attr:`upstream_cert`."""
        return self.dir / "upstream.key"

    @property
    def server_cert(self) -> Path:
        """Certificate for a proxy's own TLS listeners (localhost, 127.0.0.1, dev.propylon.test)."""
        return self.dir / "server.crt"

    @property
    def server_key(self) -> Path:
        """Private key of :attr:`server_cert`."""
        return self.dir / "server.key"

    @property
    def client_cert(self) -> Path:
        """Client certificate accepted by the lab's mTLS upstream."""
        return self.dir / "client.crt"

    @property
    def client_key(self) -> Path:
        """Private key of :attr:`client_cert`."""
        return self.dir / "client.key"


def ensure_certs(directory: str | os.PathLike[str] | None = None) -> LabCerts:
    """Make the lab PKI in ``directory`` (default ``/tmp/propylon-lab/certs``).

    Files that are present and still valid (signed by the present CA, right names,
    not about to expire) are kept, so repeated starts are fast and clients that
    already loaded ``ca.crt`` keep working. Several processes may call this at once:
    a lock file serialises them.
    """
    certs = LabCerts(Path(directory) if directory is not None else DEFAULT_CERTS_DIR)
    certs.dir.mkdir(parents=True, exist_ok=True)
    with open(certs.dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _ensure_locked(certs)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return certs


def _ensure_locked(certs: LabCerts) -> None:
    ca = _load_valid(certs.ca_cert, certs.ca_key, None, None)
    if ca is None:
        log.info("making a new lab CA in %s", certs.dir)
        ca = _make_ca()
        _write(certs.ca_cert, certs.ca_key, *ca)
    ca_cert, ca_key = ca
    leaves = [
        (certs.upstream_cert, certs.upstream_key, UPSTREAM_NAMES, ExtendedKeyUsageOID.SERVER_AUTH),
        (certs.server_cert, certs.server_key, SERVER_NAMES, ExtendedKeyUsageOID.SERVER_AUTH),
        (certs.client_cert, certs.client_key, (CLIENT_NAME,), ExtendedKeyUsageOID.CLIENT_AUTH),
    ]
    for cert_path, key_path, names, usage in leaves:
        if _load_valid(cert_path, key_path, ca_cert, names) is None:
            log.info("making %s", cert_path.name)
            _write(cert_path, key_path, *_make_leaf(ca_cert, ca_key, names, usage))


def _load_valid(cert_path: Path, key_path: Path, ca_cert: x509.Certificate | None,
                names: tuple[str, ...] | None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """Return (cert, key) if both files exist and are still fit for use, else None."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        return None
    if cert.not_valid_after_utc - _now() < _MIN_REMAINING:
        return None
    if ca_cert is not None:
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (InvalidSignature, ValueError, TypeError):
            return None
        if names is not None and set(_san_strings(cert)) != set(names):
            return None
    return cert, key


def _san_strings(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    out += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return out


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Propylon City Lab CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Propylon Lab")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
               names: tuple[str, ...], usage: x509.ObjectIdentifier
               ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _LEAF_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write(cert_path: Path, key_path: Path, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey) -> None:
    """Write key then certificate, each atomically, the key readable by its owner only."""
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    tmp_key = key_path.with_suffix(".key.tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    os.replace(tmp_key, key_path)
    tmp_cert = cert_path.with_suffix(".crt.tmp")
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp_cert, cert_path)
