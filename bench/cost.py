"""CPU cost of one proxied request in Python, without the kernel.

    python -m bench.cost [--requests 20000] [--repeat 5]

Drives the real engine and codecs over in-memory transports: the client's request
is fed to the downstream HTTP/1 protocol, the upstream "answers" from the event
loop (``call_soon``), and the response is captured when the downstream transport
is written. Three figures, each the best of ``--repeat`` runs of process CPU time:

* ``downstream only`` – parse a request, wake the connection task, write a reply;
* ``codecs only``     – the same plus an upstream exchange with a bare handler;
* ``engine``          – ``http_proxy_service``'s engine with a plain forwarder;
* ``h2 engine``       – the same engine with the client on HTTP/2 (one connection,
  one stream per request, the origin on HTTP/1 as in the ``propylon-h2`` benchmark),
  on the HTTP/2 codec in use (``PROPYLON_H2_CODEC``).
* ``failure``         – the plain forwarder with its origin down: each request's
  connect is refused (a real loopback connect) and it is answered 502 on the same
  client connection, which stays open as with nginx (Pingora would close it).
* ``cache hit``       – a caching forwarder (``MemCache``, a cache lock) answering
  every request from the cache: the first request fills the entry, all the measured
  ones are hits (the ``propylon-cache`` benchmark's path).
* ``observed``        – the ``engine`` scenario with built-in metrics and a JSON access
  log (to ``os.devnull``) on: the difference to ``engine`` is what observing costs.
* ``gateway``         – the gateway's proxy (``propylon run -c``) with one route and
  no plugin: the difference to ``engine`` is the routing and the gateway's hooks.
* ``gateway jwt``     – the bench row's route: JWT auth (HS256, a valid bearer token
  on every request), a high rate limit, built-in metrics and a JSON access log (to
  ``os.devnull``).

The difference between ``codecs only`` and ``engine`` is the engine's own cost; the
rest is codec and event-loop work. Socket and kernel time come on top (see
``python -m bench``). ``--only NAME`` runs one scenario.

``--instructions`` counts instructions instead of timing: each scenario runs under
``valgrind --tool=cachegrind`` with ``--requests`` and with three times as many,
and the difference of the two counts divided by the difference of the requests is
printed, free of the start-up and of the timing noise of a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
import time

import uvloop

from propylon import HttpPeer, ProxyHttp
from propylon.protocols.http.v1.client import H1ClientConnection
from propylon.protocols.http.v1.server import H1ServerConnection, HttpServerOptions
from propylon.protocols.http.v2.codec import CODEC
from propylon.protocols.http.v2.server import H2Options, H2ServerConnection
from propylon.proxy.service import HttpProxyApp
from propylon.shutdown import ShutdownWatch

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 21 Nov 2026 23:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello")
PEER_ADDR = ("127.0.0.1", 9)
# Nothing listens on the discard port of loopback here: a connect is refused at once.
DEAD_ADDR = ("127.0.0.1", 9)

# The HTTP/2 client's side, written once: the preface, empty SETTINGS, an ACK of the
# server's, and the connection window opened wide (the responses add up past 64 KiB).
H2_START = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
            + b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
            + b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + (2 ** 31 - 1 - 65535).to_bytes(4, "big"))
# The request of REQUEST as an HPACK block that leaves the dynamic table alone, so
# every stream can send the same bytes: :method GET, :scheme http, :path / (static
# entries), then :authority, user-agent and accept as literals not indexed.
H2_BLOCK = (b"\x82\x86\x84" + b"\x01\x0e127.0.0.1:8080" + b"\x0f\x2b\x03wrk" + b"\x0f\x04\x03*/*")


class MemoryTransport:
    """Just enough of an asyncio transport: writes go to a callback."""

    def __init__(self, on_write) -> None:
        self.on_write = on_write

    def write(self, data: bytes) -> None:
        self.on_write(data)

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, *args) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class Forwarder(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        return HttpPeer(PEER_ADDR, False, "")


def _upstream(loop) -> H1ClientConnection:
    up = H1ClientConnection()
    up.connection_made(MemoryTransport(lambda data: loop.call_soon(up.data_received, RESPONSE)))
    return up


async def _drive(protocol_factory, requests: int, request: bytes = REQUEST) -> float:
    """Feed ``requests`` requests (``request``) on one client connection, each after
    the answer to the last one."""
    loop = asyncio.get_running_loop()
    waiting: list = [None]

    def on_write(data: bytes) -> None:
        fut = waiting[0]
        if fut is not None and not fut.done():
            fut.set_result(None)

    conn = protocol_factory()
    conn.connection_made(MemoryTransport(on_write))
    for count in (2000, requests):  # warm-up, then the measured run
        started = time.process_time()
        for _ in range(count):
            waiting[0] = loop.create_future()
            conn.data_received(request)
            await waiting[0]
        took = time.process_time() - started
    return took / requests * 1e6


async def downstream_only(requests: int) -> float:
    async def answer(ds) -> bool:
        ds.conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        return True

    return await _drive(lambda: H1ServerConnection(answer, ShutdownWatch(), HttpServerOptions()), requests)


async def codecs_only(requests: int) -> float:
    up = _upstream(asyncio.get_running_loop())

    async def bare(ds) -> bool:
        up.send_request_header(ds.req.copy(), False, False)
        ds.write_header(await up.read_response_header(), hold=True)
        ds.write_body(await up.read_body())
        ds.finish()
        return True

    return await _drive(lambda: H1ServerConnection(bare, ShutdownWatch(), HttpServerOptions()), requests)


def _h2_request(stream_id: int) -> bytes:
    # HEADERS with END_STREAM and END_HEADERS.
    return len(H2_BLOCK).to_bytes(3, "big") + b"\x01\x05" + stream_id.to_bytes(4, "big") + H2_BLOCK


async def h2_engine(requests: int) -> float:
    loop = asyncio.get_running_loop()
    app = HttpProxyApp(Forwarder())
    app.engine.connector.pool.put(HttpPeer(PEER_ADDR, False, "").reuse_key(), _upstream(loop))
    waiting: list = [None]

    def on_write(data: bytes) -> None:
        # A request is done when its response body went out.
        fut = waiting[0]
        if b"hello" in data and fut is not None and not fut.done():
            fut.set_result(None)

    # The engine's handle, as the service's protocol factory binds it (not the
    # app's process_new_http, which would add a coroutine per request).
    conn = H2ServerConnection(app.engine.handle, ShutdownWatch(), H2Options())
    conn.connection_made(MemoryTransport(on_write))
    conn.data_received(H2_START)
    sid = 1
    for count in (2000, requests):  # warm-up, then the measured run
        started = time.process_time()
        for _ in range(count):
            waiting[0] = loop.create_future()
            conn.data_received(_h2_request(sid))
            sid += 2
            await waiting[0]
        took = time.process_time() - started
    return took / requests * 1e6


async def engine(requests: int) -> float:
    app = HttpProxyApp(Forwarder())
    app.engine.connector.pool.put(HttpPeer(PEER_ADDR, False, "").reuse_key(),
                                  _upstream(asyncio.get_running_loop()))
    return await _drive(app.protocol_factory(ShutdownWatch()), requests)


class DeadForwarder(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        return HttpPeer(DEAD_ADDR, False, "")


async def failure(requests: int) -> float:
    # Error lines are formatted and written as a server would write them (to a sink).
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(open(os.devnull, "w")))
    app = HttpProxyApp(DeadForwarder())
    return await _drive(app.protocol_factory(ShutdownWatch()), requests)


async def observed(requests: int) -> float:
    from prometheus_client import CollectorRegistry

    from propylon.metrics import AccessLogConfig, Observability

    obs = Observability(registry=CollectorRegistry(), access_log=AccessLogConfig(path=os.devnull))
    app = HttpProxyApp(Forwarder(), observer=obs)
    app.engine.connector.pool.put(HttpPeer(PEER_ADDR, False, "").reuse_key(),
                                  _upstream(asyncio.get_running_loop()))
    try:
        return await _drive(app.protocol_factory(ShutdownWatch()), requests)
    finally:
        obs.close()


GATEWAY_CONF = """\
listeners: [{name: web, address: "127.0.0.1:8080"}]
clusters: {origin: {backends: [{address: "127.0.0.1:9"}]}}
routes: [{name: api, match: {path: {prefix: /}}, proxy: {cluster: origin}}]
"""


def _gateway_app(jwt_row: bool):
    """A gateway listener's proxy app over the in-memory origin, and the request to
    send: one bare route, or the bench row's (bench/gateway_front.py)."""
    import tempfile

    from .gateway_front import bearer_token, gateway_config

    from prometheus_client import CollectorRegistry

    from propylon.gateway.config import load_config
    from propylon.gateway.proxy import GatewayProxy
    from propylon.gateway.runtime import Gateway, assemble, prepare
    from propylon.gateway.serve import gateway_observer

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(gateway_config("127.0.0.1:8080", "127.0.0.1:9", "127.0.0.1:9", os.devnull) if jwt_row
                else GATEWAY_CONF)
    try:
        conf = load_config(f.name)
        gateway = Gateway(assemble(prepare(conf, f.name), 1, None))
    finally:
        os.unlink(f.name)
    observer = gateway_observer(conf, None, registry=CollectorRegistry())
    obs = observer.for_service("web") if observer is not None else None
    app = HttpProxyApp(GatewayProxy(gateway, "web"), observer=obs)
    cluster = gateway.current.clusters["origin"]
    backend = cluster.lb.backends.get_backend()[0]
    app.engine.connector.pool.put(cluster.peer(backend).reuse_key(), _upstream(asyncio.get_running_loop()))
    request = REQUEST
    if jwt_row:
        request = REQUEST.replace(b"\r\n\r\n", f"\r\nAuthorization: Bearer {bearer_token()}\r\n\r\n".encode())
    return app, observer, request


async def gateway(requests: int) -> float:
    app, _, request = _gateway_app(False)
    return await _drive(app.protocol_factory(ShutdownWatch()), requests, request=request)


async def gateway_jwt(requests: int) -> float:
    app, observer, request = _gateway_app(True)
    try:
        return await _drive(app.protocol_factory(ShutdownWatch()), requests, request=request)
    finally:
        observer.close()


async def cache_hit(requests: int) -> float:
    from propylon.cache import CacheControl, CacheLock, CacheMetaDefaults, MemCache, resp_cacheable

    storage = MemCache(64 * 1024 * 1024)
    lock = CacheLock(age_timeout=5.0, stats=storage.stats)
    defaults = CacheMetaDefaults(lambda status: 3600 if status == 200 else None)

    class CachingForwarder(Forwarder):
        def request_cache_filter(self, session, ctx):
            session.cache.enable(storage, lock=lock)

        def response_cache_filter(self, session, resp, ctx):
            return resp_cacheable(CacheControl.from_headers(resp.headers), resp, False, defaults)

    app = HttpProxyApp(CachingForwarder())
    app.engine.connector.pool.put(HttpPeer(PEER_ADDR, False, "").reuse_key(),
                                  _upstream(asyncio.get_running_loop()))
    took = await _drive(app.protocol_factory(ShutdownWatch()), requests)
    if storage.stats.hits < requests:
        raise SystemExit(f"cache hit: only {storage.stats.hits} hits for {requests} requests")
    return took


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=sorted(SCENARIOS), help="run this scenario alone")
    parser.add_argument("--instructions", action="store_true",
                        help="instructions per request under cachegrind instead of CPU time")
    args = parser.parse_args(argv)
    for name, fn in SCENARIOS.items():
        if args.only and name != args.only:
            continue
        if args.instructions:
            low, high = args.requests, 3 * args.requests
            per = (_instructions(name, high) - _instructions(name, low)) / (high - low)
            label = f"{name} ({CODEC})" if fn is h2_engine else name
            print(f"{label:20} {per:10,.0f} instructions per request", flush=True)
            continue
        best = min(uvloop.run(fn(args.requests)) for _ in range(args.repeat))
        label = f"{name} ({CODEC})" if fn is h2_engine else name
        print(f"{label:20} {best:6.2f} us CPU per request")


def _instructions(name: str, requests: int) -> int:
    """Instructions of one run of scenario ``name`` (warm-up included) under cachegrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind")
    out = subprocess.run([valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                          sys.executable, "-m", "bench.cost", "--only", name, "--requests", str(requests),
                          "--repeat", "1"], capture_output=True, text=True, env=os.environ)
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode or found is None:
        raise SystemExit(f"no instruction count from cachegrind: {out.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


SCENARIOS = {"downstream only": downstream_only, "codecs only": codecs_only, "engine": engine,
             "h2 engine": h2_engine, "failure": failure, "observed": observed, "gateway": gateway,
             "gateway jwt": gateway_jwt, "cache hit": cache_hit}


if __name__ == "__main__":
    main()
