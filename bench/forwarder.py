"""The Propylon side of the benchmark: the simplest forwarder (lesson 6) to one backend.

Usage (the harness runs it with a generated conf)::

    python bench/forwarder.py --backend-port 18080 --listen 127.0.0.1:6146 -c conf.yaml

``--backend-port`` / ``--listen`` may also come from ``BENCH_BACKEND_PORT`` /
``BENCH_LISTEN``. With ``--tls-cert`` and ``--tls-key`` it terminates TLS on the
listener, offering the ALPN protocols of ``--alpn`` (default ``http/1.1``; the HTTP/2
scenario passes ``h2,http/1.1``). ``--gzip-level N`` compresses ``text/plain``
responses of any length with gzip at level N (the compression scenario).
``--observe DIR`` turns on the built-in metrics and a JSON access log written to
``DIR/access.log`` (the ``propylon-observed`` scenario, which measures what
observability costs). Every other argument goes to ``Server.from_args()`` unchanged
(``-c CONF`` holds ``threads: N``, the worker count). It defines only
``upstream_peer``, so the engine skips every other hook, which is the point: this
measures the engine's own cost per request.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys


def _split_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--backend-port", type=int, default=os.environ.get("BENCH_BACKEND_PORT"))
    parser.add_argument("--listen", default=os.environ.get("BENCH_LISTEN", "127.0.0.1:6146"))
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--alpn", default="http/1.1")
    parser.add_argument("--gzip-level", type=int, default=0)
    parser.add_argument("--observe")
    parser.add_argument("--cache", action="store_true")
    ours, rest = parser.parse_known_args(argv)
    if ours.backend_port is None:
        parser.error("--backend-port (or BENCH_BACKEND_PORT) is required")
    return ours, rest


def _tls_context(cert: str, key: str, alpn: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # same protocols as the nginx fronts
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols([p for p in alpn.split(",") if p])
    return ctx


def main(argv: list[str] | None = None) -> None:
    """Parse our two options, hand the rest to Propylon's ``Server``, and serve forever."""
    ours, rest = _split_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from propylon import CompressionOptions, HttpPeer, ProxyHttp, Server, http_proxy_service

    backend = ("127.0.0.1", int(ours.backend_port))

    class Forwarder(ProxyHttp):
        """Sends every request to the one backend, plain HTTP/1.1."""

        async def upstream_peer(self, session, ctx):
            return HttpPeer(backend, tls=False, sni="")

    proxy_class = Forwarder
    if ours.cache:
        from propylon.cache import CacheControl, CacheLock, CacheMetaDefaults, MemCache, resp_cacheable

        storage = MemCache(256 * 1024 * 1024)
        lock = CacheLock(age_timeout=5.0, stats=storage.stats)
        defaults = CacheMetaDefaults(lambda status: None)

        class CachingForwarder(Forwarder):
            """The forwarder with a MemCache: what the backend's Cache-Control allows."""

            def request_cache_filter(self, session, ctx):
                session.cache.enable(storage, lock=lock)

            def response_cache_filter(self, session, resp, ctx):
                return resp_cacheable(CacheControl.from_headers(resp.headers), resp, False, defaults)

        proxy_class = CachingForwarder

    # Server.from_args() reads sys.argv like Pingora's Opt; show it only its own flags.
    sys.argv = [sys.argv[0], *rest]
    server = Server.from_args()
    server.bootstrap()
    compression = None
    if ours.gzip_level:
        # As nginx's gzip_types text/plain and gzip_min_length 0.
        compression = CompressionOptions(gzip_level=ours.gzip_level, types=("text/plain",), min_length=0)
    observer = None
    if ours.observe:
        from propylon.metrics import AccessLogConfig, Observability

        observer = Observability(server.configuration, access_log=AccessLogConfig(
            path=os.path.join(ours.observe, "access.log"), format="json"))
    svc = http_proxy_service(server.configuration, proxy_class(), compression=compression, observer=observer)
    if ours.tls_cert:
        svc.add_tls_context(ours.listen, _tls_context(ours.tls_cert, ours.tls_key, ours.alpn))
    else:
        svc.add_tcp(ours.listen)
    server.add_service(svc)
    server.run_forever()


if __name__ == "__main__":
    main()
