"""What an idle keep-alive HTTP/1 connection holds in Propylon, object by object.

    python -m bench.idle_objects [--connections 2000] [--top 25]

Serves the plain forwarder (``HttpProxyApp`` before a small in-process origin) on
127.0.0.1 from an event-loop thread, opens ``N`` connections that each make one
request and then stay idle, and compares two ``tracemalloc`` snapshots taken
before and after: the allocations still alive, grouped by the line of Propylon (or
of asyncio/uvloop) that made them, per connection. It then lists the objects one
idle connection references (its protocol, parser, task, timer, last session...)
with their shallow sizes. A line of this file in the table stands for what uvloop
allocates with no Python frame of ours (transport, socket object, libuv handles).
``bench.idle`` gives the RSS figure; this says where it goes. Everything runs in one process, on loopback, and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import sys
import threading
import time
import tracemalloc
from collections import Counter

import uvloop

from propylon import HttpPeer, ProxyHttp, ShutdownWatch
from propylon.proxy.service import HttpProxyApp

_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle\r\nAccept: */*\r\n\r\n"


class _Origin(asyncio.Protocol):
    """Answers every request head with ``200 hello`` (enough for one GET per connection)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, _, self.buf = self.buf.partition(b"\r\n\r\n")
            self.transport.write(_REPLY)  # type: ignore[attr-defined]


def _serve(port_box: list, ready: threading.Event, holder: dict) -> None:
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)

    async def start() -> None:
        origin = await loop.create_server(_Origin, "127.0.0.1", 0)
        origin_port = origin.sockets[0].getsockname()[1]

        class Forwarder(ProxyHttp):
            async def upstream_peer(self, session, ctx):
                return HttpPeer(("127.0.0.1", origin_port), tls=False, sni="")

        app = HttpProxyApp(Forwarder())
        conns: list = []
        make = app.protocol_factory(ShutdownWatch())

        def factory():
            proto = make()
            conns.append(proto)
            return proto

        front = await loop.create_server(factory, "127.0.0.1", 0, backlog=4096)
        holder["conns"] = conns
        holder["loop"] = loop
        port_box.append(front.sockets[0].getsockname()[1])
        ready.set()

    loop.run_until_complete(start())
    loop.run_forever()


def _open(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(_REQUEST)
        buf = b""
        while not buf.endswith(b"hello"):
            data = s.recv(4096)
            if not data:
                raise ConnectionError("closed before answering")
            buf += data
        socks.append(s)
    return socks


def _ours(tb: tracemalloc.Traceback) -> bool:
    """Allocations made by the server's thread, not by this script's client sockets
    (tracemalloc lists the oldest call first: a thread's bootstrap in threading.py)."""
    return tb[0].filename.endswith("threading.py")


def _where(tb: tracemalloc.Traceback) -> str:
    """The most telling frame: the innermost one in propylon, else the innermost one."""
    for frame in reversed(tb):  # tracemalloc lists the oldest call first
        if "/propylon/" in frame.filename:
            return f"{frame.filename.split('/propylon/')[-1]}:{frame.lineno}"
    frame = tb[-1]
    return f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}"


def _shallow_report(conn) -> list[tuple[str, int]]:
    """The objects one idle connection references directly or one level down."""
    rows = [("H1ServerConnection", sys.getsizeof(conn))]
    seen = {id(conn)}
    names = [n for n in dir(conn) if not n.startswith("__")]
    for name in names:
        try:
            value = getattr(type(conn), name)
        except AttributeError:
            value = None
        if callable(value) or isinstance(value, property):
            continue
        try:
            value = getattr(conn, name)
        except AttributeError:
            continue
        if value is None or isinstance(value, (bool, int, float)) or id(value) in seen:
            continue
        seen.add(id(value))
        size = sys.getsizeof(value)
        extra = ""
        if name == "_task":
            coro = value.get_coro()
            size += sys.getsizeof(coro) + sys.getsizeof(coro.cr_frame) if coro.cr_frame else 0
            extra = " (+ its coroutine and frame)"
        if name == "_last" and value is not None:
            req = getattr(value, "req", None)
            extra = f" (keeps the last request head: {type(req).__name__})"
        rows.append((f".{name}: {type(value).__name__}{extra}", size))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.idle_objects", description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    port_box: list = []
    ready = threading.Event()
    holder: dict = {}
    threading.Thread(target=_serve, args=(port_box, ready, holder), daemon=True).start()
    if not ready.wait(10):
        print("the server did not start", file=sys.stderr)
        return 1
    port = port_box[0]
    warm = _open(port, 50)  # pools, caches and the code paths exist before measuring
    gc.collect()
    tracemalloc.start(25)
    types_before = Counter(type(o).__name__ for o in gc.get_objects())
    before = tracemalloc.take_snapshot()
    socks = _open(port, args.connections)
    time.sleep(0.5)
    gc.collect()
    after = tracemalloc.take_snapshot()
    types_after = Counter(type(o).__name__ for o in gc.get_objects())
    n = args.connections
    stats = [s for s in after.compare_to(before, "traceback") if s.size_diff > 0 and _ours(s.traceback)]
    by_line: Counter = Counter()
    counts: Counter = Counter()
    for s in stats:
        by_line[_where(s.traceback)] += s.size_diff
        counts[_where(s.traceback)] += s.count_diff
    total = sum(by_line.values())
    print(f"{n} idle keep-alive connections, one request each: {total / n:,.0f} B per connection "
          f"traced by tracemalloc (Python and uvloop allocations; not the kernel's socket buffers)")
    print(f"\n{'bytes/conn':>10}  {'blocks/conn':>11}  allocated at")
    for where, size in by_line.most_common(args.top):
        print(f"{size / n:>10,.0f}  {counts[where] / n:>11.2f}  {where}")
    print("\nGC-tracked objects added per connection (type: count):")
    diff = {t: (types_after[t] - types_before.get(t, 0)) / n for t in types_after}
    for t, c in sorted(diff.items(), key=lambda kv: -kv[1])[:20]:
        if c >= 0.5:
            print(f"  {t}: {c:.2f}")
    conns = holder["conns"]
    idle = conns[-1]
    print("\nOne idle connection, shallow sizes (sys.getsizeof):")
    for label, size in _shallow_report(idle):
        print(f"  {size:>6}  {label}")
    for s in socks + warm:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
