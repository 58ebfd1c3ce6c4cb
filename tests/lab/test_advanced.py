"""advanced-http's caching paths, advanced-https (SNI, ALPN), advanced-mtls and advanced-h2c."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from pathlib import Path

from propylon.lab import Lab, ensure_certs

from lab_support import curl, curl_head_body, header, hostport


def _fresh(path: str) -> str:
    sep = "&" if "?" in path else "?"
    return f"{path}{sep}t={uuid.uuid4().hex}"


def test_cache_control_by_path_and_fetch_counter(elab: Lab) -> None:
    base = elab.url("advanced-http")
    for path, cc in (("/short", "max-age=5"), ("/long", "max-age=60"), ("/no_store", "no-store"),
                     ("/file", "public, max-age=300"), ("/", "public, max-age=10")):
        target = _fresh(path)
        head1, body1 = curl_head_body(base + target)
        head2, body2 = curl_head_body(base + target)
        assert header(head1, "Cache-Control") == cc
        assert header(head1, "X-Lab-Fetch") == "1" and header(head2, "X-Lab-Fetch") == "2"
        assert body1.endswith("#1") and body2.endswith("#2") and body1 != body2
    _, body = curl_head_body(base + _fresh("/short"))
    assert body == "Content for max-age=5 #1"


def test_slow_resource_and_swr_paths(elab: Lab) -> None:
    base = elab.url("advanced-http")
    t0 = time.monotonic()
    head, body = curl_head_body(base + _fresh("/resource?ms=300"))
    assert time.monotonic() - t0 >= 0.3
    assert body == "Expensive Content Generated #1"
    head, body = curl_head_body(base + _fresh("/swr?ms=0&max_age=1&swr=3"))
    assert header(head, "Cache-Control") == "public, max-age=1, stale-while-revalidate=3"
    assert body == "Content Version 1"


def test_stale_if_error_path_fails_after_first_fetch(elab: Lab) -> None:
    url = elab.url("advanced-http") + _fresh("/sie")
    head, _ = curl_head_body(url)
    assert head.startswith("HTTP/1.1 200")
    assert header(head, "Cache-Control") == "max-age=1, stale-if-error=60"
    head, _ = curl_head_body(url)
    assert head.startswith("HTTP/1.1 500")


def test_revalidation_answers_304_to_matching_validators(elab: Lab) -> None:
    url = elab.url("advanced-http") + _fresh("/revalidate")
    head, body = curl_head_body(url)
    etag, last_mod = header(head, "ETag"), header(head, "Last-Modified")
    assert etag and last_mod and body.startswith("Revalidated content")
    head, body = curl_head_body("-H", f"If-None-Match: {etag}", url)
    assert head.startswith("HTTP/1.1 304") and body == ""
    assert header(head, "Content-Length") is None and header(head, "ETag") == etag
    head, _ = curl_head_body("-H", f"If-Modified-Since: {last_mod}", url)
    assert head.startswith("HTTP/1.1 304")
    head, _ = curl_head_body("-H", 'If-None-Match: "other"', url)
    assert head.startswith("HTTP/1.1 200")


def test_vary_expires_and_generic_cache_path(elab: Lab) -> None:
    base = elab.url("advanced-http")
    head, body = curl_head_body("-H", "Accept-Language: fr", base + _fresh("/vary"))
    assert header(head, "Vary") == "Accept-Language" and body.startswith("Variant for fr")
    head, _ = curl_head_body(base + _fresh("/expires"))
    assert header(head, "Expires") and header(head, "Cache-Control") is None
    head, body = curl_head_body(base + _fresh("/cache?cc=s-maxage%3D7&status=203"))
    assert head.startswith("HTTP/1.1 203") and header(head, "Cache-Control") == "s-maxage=7"


def _tls_args(lab: Lab, name: str, sni: str) -> tuple[list[str], int]:
    """curl arguments that trust the lab CA and send ``sni`` to the member; and its port."""
    host, port = hostport(lab, name)
    return ["--cacert", str(lab.certs.ca_cert), "--resolve", f"{sni}:{port}:{host}"], port


def test_https_negotiates_h2_and_reports_sni(elab: Lab) -> None:
    args, port = _tls_args(elab, "advanced-https", "v1.api.propylon.test")
    head, body = curl_head_body(*args, f"https://v1.api.propylon.test:{port}/v1/test")
    assert head.startswith("HTTP/2 200")
    assert body == "Response from Advanced Upstream (HTTPS + HTTP/2)"
    assert header(head, "x-lab-sni") == "v1.api.propylon.test"
    assert header(head, "x-lab-alpn") == "h2"


def test_https_speaks_http1_when_asked(elab: Lab) -> None:
    args, port = _tls_args(elab, "advanced-https", "advanced.propylon.test")
    out = curl("--http1.1", *args, f"https://advanced.propylon.test:{port}/echo")
    doc = json.loads(out.stdout)
    assert doc["protocol"] == "HTTP/1.1"
    assert doc["tls"]["sni"] == "advanced.propylon.test" and doc["tls"]["alpn"] == "http/1.1"


def test_https_certificate_does_not_cover_other_names(elab: Lab) -> None:
    args, port = _tls_args(elab, "advanced-https", "other.propylon.test")
    out = curl(*args, f"https://other.propylon.test:{port}/")
    assert out.returncode == 60  # peer certificate cannot be authenticated


def test_h2_streams_large_bodies_both_ways(elab: Lab) -> None:
    args, port = _tls_args(elab, "advanced-https", "advanced.propylon.test")
    n = 2_000_000
    body = subprocess.run(["curl", "-sS", *args, f"https://advanced.propylon.test:{port}/size?bytes={n}"],
                          capture_output=True, timeout=20, check=True).stdout
    assert len(body) == n
    assert body == (bytes(range(256)) * (n // 256 + 1))[:n]
    payload = b"z" * 300_000
    out = subprocess.run(["curl", "-sS", *args, "--data-binary", "@-",
                          f"https://advanced.propylon.test:{port}/echo"],
                         input=payload, capture_output=True, timeout=20, check=True).stdout
    doc = json.loads(out)
    assert doc["protocol"] == "HTTP/2" and doc["body_length"] == len(payload)
    assert doc["body_sha256"] == hashlib.sha256(payload).hexdigest()


def test_mtls_refuses_without_certificate_and_accepts_lab_client(elab: Lab) -> None:
    args, port = _tls_args(elab, "advanced-mtls", "advanced.propylon.test")
    url = f"https://advanced.propylon.test:{port}/"
    head, body = curl_head_body(*args, url)
    assert head.startswith("HTTP/2 400")
    assert "<center>No required SSL certificate was sent</center>" in body
    certs = elab.certs
    head, body = curl_head_body(*args, "--cert", str(certs.client_cert), "--key", str(certs.client_key), url)
    assert head.startswith("HTTP/2 200")
    assert body == "Response from mTLS Protected Upstream. Hello, Authenticated Client!"
    assert "client.propylon.test" in (header(head, "x-lab-client-cert") or "")


def test_mtls_rejects_a_certificate_from_another_ca(elab: Lab, tmp_path: Path) -> None:
    foreign = ensure_certs(tmp_path / "foreign")
    args, port = _tls_args(elab, "advanced-mtls", "advanced.propylon.test")
    out = curl(*args, "--cert", str(foreign.client_cert), "--key", str(foreign.client_key),
               f"https://advanced.propylon.test:{port}/")
    assert out.returncode != 0 and "200" not in out.stdout


def test_h2c_prior_knowledge(elab: Lab) -> None:
    url = elab.url("advanced-h2c")
    head, body = curl_head_body("--http2-prior-knowledge", url + "/")
    assert head.startswith("HTTP/2 200")
    assert body == "Response from Advanced Upstream (H2C - Cleartext HTTP/2)"
    out = curl("--http2-prior-knowledge", "-d", "ping", url + "/echo")
    doc = json.loads(out.stdout)
    assert doc["protocol"] == "HTTP/2" and doc["body"] == "ping"
    assert [":method", "POST"] in doc["headers"]


def test_h2c_serves_many_concurrent_streams_with_large_bodies(elab: Lab) -> None:
    out = subprocess.run(["h2load", "-n", "40", "-c", "2", "-m", "10",
                          elab.url("advanced-h2c") + "/size?bytes=500000"],
                         capture_output=True, text=True, timeout=30).stdout
    assert "40 succeeded, 0 failed, 0 errored, 0 timeout" in out
    assert "20000000 data" in out.replace("(", "").replace(")", "")  # every byte of every body
