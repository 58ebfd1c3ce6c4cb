"""Lessons 7, 14 and 15 run as real processes and checked with curl.

7: TLS termination on 6147 (HTTPS in, plain HTTP to blue); 14: h2 negotiated by
ALPN on 6154 and h2 to the TLS upstream; 15: HTTP/1.1 in on 6155, answered by the
lab's h2c-only upstream.
"""

from __future__ import annotations

from tlsex_support import CA, curl, curl_fails, retry_if_lab_vanishes, running


@retry_if_lab_vanishes
def test_lesson_07_tls_termination(tls_lab):
    with running("07_tls_termination.py", 6147) as ex:
        r = curl("https://localhost:6147/", "--cacert", CA, "--http2")
        assert (r.status, r.body) == (200, "Response from BLUE")
        assert "SSL certificate verify ok" in r.trace
        # enable_h2(): the listener picks h2 when the client offers it
        assert "ALPN: server accepted h2" in r.trace and r.http_version == "2"

        # The seed's way: the certificate's own name, resolved to our address.
        r = curl("https://dev.propylon.test:6147/", "--cacert", CA,
                 "--resolve", "dev.propylon.test:6147:127.0.0.1", "--http1.1")
        assert (r.status, r.body, r.http_version) == (200, "Response from BLUE", "1.1")

        # Without the lab CA the client cannot trust us: real TLS, real certificate.
        failed = curl_fails("https://localhost:6147/")
        assert failed.returncode == 60, failed.stderr

        # Plain HTTP on a TLS port gets no HTTP answer.
        failed = curl_fails("http://127.0.0.1:6147/")
        assert failed.returncode != 0

        ex.wait_count(r"Forwarding HTTPS request to Upstream Blue", count=2)


@retry_if_lab_vanishes
def test_lesson_14_http2_end_to_end(tls_lab):
    with running("14_http2_support.py", 6154) as ex:
        r = curl("https://localhost:6154/", "--http2", "--cacert", CA)
        assert r.status == 200
        assert r.http_version == "2"
        assert "ALPN: server accepted h2" in r.trace
        # The upstream says which protocol it was spoken to in: h2 as well.
        assert r.body == "Response from Advanced Upstream (HTTPS + HTTP/2)"
        assert r.header("x-lab-alpn") == "h2"
        assert r.header("x-lab-sni") == "advanced.propylon.test"

        # An HTTP/1.1-only client still works on the same port.
        r = curl("https://localhost:6154/", "--http1.1", "--cacert", CA)
        assert (r.status, r.http_version) == (200, "1.1")
        assert r.body == "Response from Advanced Upstream (HTTPS + HTTP/2)"

        ex.wait_count(r"Forwarding to Upstream Advanced via HTTPS \(ALPN: H2/H1\)", count=2)
        assert set(ex.wait_count(r"Upstream connection \(reused=\w+\) negotiated ALPN: (\S+)")) == {"h2"}


@retry_if_lab_vanishes
def test_lesson_15_h2c_upstream(tls_lab):
    with running("15_h2c_support.py", 6155) as ex:
        r = curl("http://127.0.0.1:6155/")
        assert (r.status, r.http_version) == (200, "1.1")
        assert r.body == "Response from Advanced Upstream (H2C - Cleartext HTTP/2)"
        assert r.header("x-lab-member") == "advanced-h2c"
        ex.wait_count(r"Forwarding to Upstream Advanced via H2C")

        # The upstream only speaks h2c: proof that the proxy did the translating.
        failed = curl_fails("http://127.0.0.1:18082/", "--http1.1", "-o", "/dev/null",
                            "-w", "%{http_code}", timeout=3)
        assert failed.stdout != "200"
