"""The Prometheus endpoint over loopback with curl: it is an HTTP app built on the
public listening-app API (``ServeHttp``), served in this process."""

from __future__ import annotations

import gzip
import socket

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter

from propylon.metrics import prometheus_http_service
from propylon.shutdown import ShutdownWatch
from support import LoopThread, run_curl


@pytest.fixture
def metrics():
    """The endpoint for a registry holding ``requests_total`` = 3; yields (url, shutdown)."""
    registry = CollectorRegistry()
    Counter("requests", "Requests seen", registry=registry).inc(3)
    service = prometheus_http_service(registry)
    service.add_tcp("127.0.0.1:0")
    shutdown = ShutdownWatch()
    lt = LoopThread()
    bound = [(listener, listener.bind()) for listener in service.listeners]
    port = bound[0][1].getsockname()[1]
    lt.run(service.start_serving(bound, shutdown))
    try:
        yield f"http://127.0.0.1:{port}", shutdown, lt, service
    finally:
        lt.call(service.stop_accepting)
        lt.call(shutdown.trigger)
        lt.run(service.wait_drained())
        lt.close()


def test_scrape_in_text_format_and_gzip(metrics):
    url, *_ = metrics
    plain = run_curl("-i", f"{url}/metrics", text=True)
    head, _, body = plain.stdout.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200") and f"Content-Type: {CONTENT_TYPE_LATEST}" in head
    assert "requests_total 3.0" in body
    zipped = run_curl("-H", "Accept-Encoding: gzip", f"{url}/any/path")
    assert b"requests_total 3.0" in gzip.decompress(zipped.stdout)


def test_head_has_no_body_and_other_methods_get_405(metrics):
    url, *_ = metrics
    head = run_curl("-I", f"{url}/metrics", text=True)
    assert head.stdout.startswith("HTTP/1.1 200") and "Content-Length: " in head.stdout
    posted = run_curl("-i", "-X", "POST", f"{url}/metrics", text=True)
    assert posted.stdout.startswith("HTTP/1.1 405") and "Allow: GET, HEAD" in posted.stdout
    for answer in (head.stdout, posted.stdout):  # the same fields as every answer Propylon makes
        assert "Server: Propylon" in answer and "\r\nDate: " in answer and "Content-Length: " in answer


def test_two_scrapes_share_one_connection_and_shutdown_closes_it(metrics):
    url, shutdown, lt, service = metrics
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for _ in range(2):
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(65536)
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            body = head.partition(b"\r\n\r\n")[2]
            while len(body) < length:
                body += s.recv(65536)
            assert b"requests_total 3.0" in body
        lt.call(shutdown.trigger)  # the idle keep-alive connection is closed
        assert s.recv(10) == b""
