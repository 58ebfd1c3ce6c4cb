"""TLS on both sides: termination with SNI certificates, upstream verification,
upstream mTLS, and failures that must never be accepted silently."""

from __future__ import annotations

import os
import subprocess

import pytest

from propylon import CertKey, ErrorType, HttpPeer, PeerOptions, ProxyHttp
from propylon.protocols.tls import TlsConfigError, TlsSettings


def certs(lab) -> str:
    return str(lab.certs.dir)


class ToTls(ProxyHttp):
    def __init__(self, addr, sni: str, options: PeerOptions, client_cert: CertKey | None = None) -> None:
        self.addr, self.sni, self.options, self.client_cert = addr, sni, options, client_cert
        self.errors: list = []
        self.digests: list = []

    async def upstream_peer(self, session, ctx):
        peer = HttpPeer(self.addr, True, self.sni, self.options)
        peer.client_cert_key = self.client_cert
        return peer

    async def connected_to_upstream(self, session, reused, peer, digest, ctx):
        self.digests.append(digest)

    async def logging(self, session, e, ctx):
        self.errors.append(e)


def curl(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-s", *args, url], capture_output=True, text=True, timeout=20)


def test_upstream_tls_verified_with_sni(lab, start_proxy):
    ca = os.path.join(certs(lab), "ca.crt")
    proxy = ToTls(lab.address("advanced-https"), "v1.api.propylon.test", PeerOptions(ca_file=ca))
    p = start_proxy(proxy)
    out = curl(p.url + "/", "-w", "\n%{http_code}")
    assert out.stdout.endswith("200"), out.stdout
    tls = proxy.digests[0].tls
    assert tls is not None and tls.version in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("case", ["wrong sni", "unknown ca"])
def test_upstream_tls_failures_are_502(case, lab, start_proxy, tmp_path):
    if case == "wrong sni":
        opts = PeerOptions(ca_file=os.path.join(certs(lab), "ca.crt"))
        sni = "not-the-right-name.example.test"
    else:
        from propylon.lab.certs import ensure_certs

        other = ensure_certs(tmp_path / "other")  # a CA nobody trusts here
        opts = PeerOptions(ca_file=str(other.dir / "ca.crt"))
        sni = "advanced.propylon.test"
    proxy = ToTls(lab.address("advanced-https"), sni, opts)
    p = start_proxy(proxy)
    assert curl(p.url + "/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "502"
    deadline = __import__("time").monotonic() + 2
    while not proxy.errors and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.01)
    assert proxy.errors[0].etype == ErrorType.INVALID_CERT


def test_upstream_mtls(lab, start_proxy):
    d = certs(lab)
    opts = PeerOptions(ca_file=os.path.join(d, "ca.crt"))
    with_cert = ToTls(lab.address("advanced-mtls"), "advanced.propylon.test", opts,
                      CertKey(os.path.join(d, "client.crt"), os.path.join(d, "client.key")))
    without = ToTls(lab.address("advanced-mtls"), "advanced.propylon.test", opts)
    assert curl(start_proxy(with_cert).url + "/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
    # The lab's mTLS origin answers 400 without a certificate (as nginx does) or
    # refuses the handshake (502): either way the request never succeeds.
    assert curl(start_proxy(without).url + "/", "-o", "/dev/null", "-w", "%{http_code}").stdout in ("400", "502")


def test_downstream_tls_termination_with_sni_certificates(lab, start_proxy):
    d = certs(lab)
    settings = TlsSettings.intermediate(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    settings.add_certificate("advanced.propylon.test", os.path.join(d, "upstream.crt"),
                             os.path.join(d, "upstream.key"))

    class Blue(ProxyHttp):
        async def upstream_peer(self, session, ctx):
            return HttpPeer(lab.address("blue"), False, "")

    p = start_proxy(Blue(), ssl=settings.build_context())
    ca = os.path.join(d, "ca.crt")
    out = curl(f"https://localhost:{p.port}/", "--cacert", ca)
    assert out.stdout == "Response from BLUE", out.stderr
    out = curl(f"https://advanced.propylon.test:{p.port}/", "--cacert", ca,
               "--resolve", f"advanced.propylon.test:{p.port}:127.0.0.1", "-o", "/dev/null", "-w", "%{http_code}")
    assert out.stdout == "200", out.stderr


def test_downstream_client_certificates(lab, start_proxy):
    d = certs(lab)
    settings = TlsSettings.intermediate(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    settings.verify_clients(os.path.join(d, "ca.crt"))
    seen = []

    class Who(ProxyHttp):
        async def request_filter(self, session, ctx):
            seen.append(session.digest.tls.peer_cert)
            await session.write_response(200, "hello")
            return True

        async def upstream_peer(self, session, ctx):
            raise AssertionError("not reached")

    p = start_proxy(Who(), ssl=settings.build_context())
    base = ["--cacert", os.path.join(d, "ca.crt")]
    ok = curl(f"https://localhost:{p.port}/", *base, "--cert", os.path.join(d, "client.crt"),
              "--key", os.path.join(d, "client.key"))
    assert ok.stdout == "hello"
    assert seen and seen[0] and "subject" in seen[0]
    refused = curl(f"https://localhost:{p.port}/", *base, "-w", "%{http_code}")
    assert refused.stdout in ("000", "")


def test_bad_certificate_file_named_at_start(tmp_path):
    missing = tmp_path / "nope.crt"
    with pytest.raises(TlsConfigError, match="nope.crt"):
        TlsSettings.intermediate(str(missing), str(missing)).build_context()
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    with pytest.raises(TlsConfigError, match="bad.crt"):
        TlsSettings.intermediate(str(bad), str(bad)).build_context()


def test_upstream_tls_sessions_are_resumed(lab, start_proxy):
    """With no pooling, every request opens a new TLS connection; from the second
    one on, the handshake resumes the origin's session."""

    class NoPool:
        upstream_keepalive_pool_size = 0

    ca = os.path.join(certs(lab), "ca.crt")
    proxy = ToTls(lab.address("advanced-https"), "advanced.propylon.test", PeerOptions(ca_file=ca))
    p = start_proxy(proxy, conf=NoPool())
    for _ in range(3):
        assert curl(p.url + "/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
    reused = [d.tls.session_reused for d in proxy.digests]
    assert reused[0] is False and reused[-1] is True, reused


def test_alternative_cn_accepts_a_second_name(lab, start_proxy):
    """The SNI names a host the certificate does not cover, but ``alternative_cn``
    names one it does: accepted. Without it: refused."""
    ca = os.path.join(certs(lab), "ca.crt")
    good = ToTls(lab.address("advanced-https"), "origin.example.test",
                 PeerOptions(ca_file=ca, alternative_cn="advanced.propylon.test"))
    bad = ToTls(lab.address("advanced-https"), "origin.example.test", PeerOptions(ca_file=ca))
    assert curl(start_proxy(good).url + "/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
    assert curl(start_proxy(bad).url + "/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "502"
