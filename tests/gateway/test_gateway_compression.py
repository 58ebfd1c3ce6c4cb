"""The ``compression`` plugin against a real ``propylon run -c`` process: curl
``--compressed`` and http.client with each coding, the size and type limits, and
cached responses compressed like fresh ones."""

from __future__ import annotations

import gzip
import http.client

import brotli
import pytest
import zstandard

from support import run_curl

CONF = """\
listeners:
  - {name: web, address: "127.0.0.1:{port}"}
clusters:
  blue: {backends: [{address: "{blue}"}]}
  adv: {backends: [{address: "{adv}"}]}
routes:
  - name: squeezed
    match: {path: {prefix: /z/}}
    rewrite: {strip_prefix: /z}
    proxy: {cluster: blue}
    plugins:
      compression: {codings: [zstd, br, gzip], level: 4}
  - name: big-only
    match: {path: {prefix: /big/}}
    rewrite: {strip_prefix: /big}
    proxy: {cluster: blue}
    plugins:
      compression: {min_size: 50000, types: [application/octet-stream]}
  - name: html-only
    match: {path: {prefix: /html/}}
    rewrite: {strip_prefix: /html}
    proxy: {cluster: blue}
    plugins:
      compression: {types: [text/html]}
  - name: cached
    match: {path: {prefix: /c/}}
    rewrite: {strip_prefix: /c}
    proxy: {cluster: adv}
    plugins:
      compression: {codings: [gzip]}
      cache: {}
  - {name: plain, match: {path: {prefix: /}}, proxy: {cluster: blue}}
"""

DECODE = {"gzip": gzip.decompress, "br": brotli.decompress,
          "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data)}


def fetch(port: int, path: str, accept: str | None) -> tuple[dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": accept} if accept else {})
        resp = conn.getresponse()
        assert resp.status == 200
        return {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def gw(gateway_run, lab):
    host, port = lab.address("advanced-http")
    return gateway_run(CONF, adv=f"{host}:{port}")


def test_each_coding_and_the_clients_choice(gw):
    _, plain = fetch(gw.port, "/size?bytes=100000", None)
    assert len(plain) == 100000
    for accept, coding in (("gzip", "gzip"), ("br", "br"), ("zstd", "zstd"),
                           ("gzip, br, zstd", "zstd"), ("gzip;q=1, br;q=0.5", "gzip")):
        headers, body = fetch(gw.port, "/z/size?bytes=100000", accept)
        assert headers.get("content-encoding") == coding, (accept, headers)
        assert "accept-encoding" in headers.get("vary", "").lower()
        assert len(body) < len(plain) // 2 and DECODE[coding](body) == plain
    headers, body = fetch(gw.port, "/z/size?bytes=100000", None)  # no Accept-Encoding: as it is
    assert "content-encoding" not in headers and body == plain
    # curl decodes what it asked for and gets the same bytes.
    out = run_curl("-s", "--compressed", "-D", "-", f"http://127.0.0.1:{gw.port}/z/size?bytes=100000")
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert b"content-encoding: " in head.lower() and body == plain


def test_size_and_type_limits(gw):
    headers, body = fetch(gw.port, "/big/size?bytes=1000", "gzip")  # under min_size
    assert "content-encoding" not in headers and len(body) == 1000
    headers, body = fetch(gw.port, "/big/size?bytes=60000", "gzip")
    assert headers.get("content-encoding") == "gzip" and len(gzip.decompress(body)) == 60000
    headers, _ = fetch(gw.port, "/html/size?bytes=60000", "gzip")  # octet-stream is not text/html
    assert "content-encoding" not in headers


def test_cached_responses_are_compressed_per_client(gw):
    path = "/c/cache?cc=max-age%3D60&pad=" + "x" * 400
    headers, body = fetch(gw.port, path, "gzip")
    assert (headers["x-cache-status"], headers.get("content-encoding")) == ("MISS", "gzip")
    text = gzip.decompress(body)
    headers, body = fetch(gw.port, path, "gzip")
    assert (headers["x-cache-status"], headers.get("content-encoding")) == ("HIT", "gzip")
    assert gzip.decompress(body) == text
    headers, body = fetch(gw.port, path, None)  # the same entry, sent as stored
    assert (headers["x-cache-status"], headers.get("content-encoding")) == ("HIT", None)
    assert body == text
