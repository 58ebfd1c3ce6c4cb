"""Lessons 20 and 21 run as real processes and checked with curl.

20: the path picks the SNI (and Host) the proxy presents to the lab's TLS upstream,
which reports the name it saw; 21: only ``/auth`` carries the client certificate
the mTLS upstream demands.
"""

from __future__ import annotations

from tlsex_support import curl, retry_if_lab_vanishes, running


@retry_if_lab_vanishes
def test_lesson_20_sni_follows_the_path(tls_lab):
    with running("20_sni_routing.py", 6164) as ex:
        for path, name in (("/v1/test", "v1.api.propylon.test"),
                           ("/v2/test", "v2.api.propylon.test"),
                           ("/other", "v2.api.propylon.test"),  # anything else: v2
                           ("/v1/again", "v1.api.propylon.test")):
            r = curl(f"http://127.0.0.1:6164{path}")
            assert r.status == 200, (path, r.body)
            assert r.body == "Response from Advanced Upstream (HTTPS + HTTP/1.1)"
            # What the upstream saw in the ClientHello, and the Host kept in step.
            assert r.header("x-lab-sni") == name, path
            assert r.header("x-lab-host") == name, path
        ex.wait_count(r"Connecting to IP: 127\.0\.0\.1:18443 with SNI: v1\.api\.propylon\.test", count=2)
        ex.wait_count(r"Connecting to IP: 127\.0\.0\.1:18443 with SNI: v2\.api\.propylon\.test", count=2)


@retry_if_lab_vanishes
def test_lesson_21_client_certificate_only_for_auth(tls_lab):
    with running("21_mutual_tls.py", 6165) as ex:
        r = curl("http://127.0.0.1:6165/anon")
        assert r.status == 400
        assert "<center>No required SSL certificate was sent</center>" in r.body

        r = curl("http://127.0.0.1:6165/auth")
        assert r.status == 200
        assert r.body == "Response from mTLS Protected Upstream. Hello, Authenticated Client!"
        assert "client.propylon.test" in (r.header("x-lab-client-cert") or "")

        # The authenticated connection is pooled apart: /anon is still anonymous.
        r = curl("http://127.0.0.1:6165/anon")
        assert r.status == 400
        r = curl("http://127.0.0.1:6165/auth")
        assert r.status == 200

        ex.wait_count(r"Connecting anonymously \(no cert\) for /anon", count=2)
        ex.wait_count(r"Attaching Client Certificate for /auth request", count=2)
