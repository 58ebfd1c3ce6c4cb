"""Lesson 23's point, checked on a tunnel that carries no bytes at all.

The lab's echo server pings every 20 s, so a quiet WebSocket through it is never
silent on the wire. Here the example's own ``main`` runs with its upstream pointed
at a WebSocket echo of the test's (no pings, ephemeral port) and its listener on a
free port: with the example's timeouts (None) a silent connection lives on; the
same proxy with a 1 s read timeout cuts it, which is why the lesson turns them off.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from support import free_port
from tlsex_support import running

#: Silence to survive: the lesson's 70 s with PROPYLON_SLOW_TESTS=1, else 3 s.
IDLE_SECONDS = 70.0 if os.environ.get("PROPYLON_SLOW_TESTS") == "1" else 3.0

#: Runs examples/23's main() with other upstream/listen addresses and, when asked,
#: a read timeout put on the peer the example builds.
RUNNER = '''
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ws_example", "examples/23_websocket_upgrade.py")
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
upstream_port, listen_port, read_timeout = sys.argv[1:4]
example.ECHO_SERVER = ("127.0.0.1", int(upstream_port))
example.LISTEN = ("127.0.0.1", int(listen_port))
if read_timeout != "none":
    class WithReadTimeout(example.WebSocketProxy):
        async def upstream_peer(self, session, ctx):
            peer = await super().upstream_peer(session, ctx)
            peer.options.read_timeout = float(read_timeout)
            return peer
    example.WebSocketProxy = WithReadTimeout
sys.argv = sys.argv[:1]
example.main()
'''


@pytest.fixture
def silent_echo() -> Iterator[int]:
    """A WebSocket echo that never pings, on an ephemeral loopback port."""
    bound: list[int] = []
    ready, stop = threading.Event(), threading.Event()

    async def echo(ws) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, ping_interval=None, compression=None) as server:
            bound.append(next(iter(server.sockets)).getsockname()[1])
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5), "the silent echo did not start"
    try:
        yield bound[0]
    finally:
        stop.set()
        thread.join(5)


@pytest.fixture
def runner(tmp_path: Path) -> str:
    path = tmp_path / "run_23.py"
    path.write_text(RUNNER)
    return str(path)


def _ws(port: int):
    return connect(f"ws://127.0.0.1:{port}/", proxy=None, open_timeout=5,
                   ping_interval=None, compression=None)


@pytest.mark.timeout(IDLE_SECONDS + 60)
def test_silent_tunnel_outlives_the_quiet_spell(silent_echo, runner):
    """IDLE_SECONDS (70 s with PROPYLON_SLOW_TESTS=1, else 3 s) without one byte."""
    port = free_port()
    with running(runner, port, args=(str(silent_echo), str(port), "none"),
                 env={"WS_DEMO_CLIENT": "0"}):
        with _ws(port) as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
            time.sleep(IDLE_SECONDS)
            ws.send("still here")
            assert ws.recv(timeout=5) == "still here"


def test_a_read_timeout_cuts_the_silent_tunnel(silent_echo, runner):
    port = free_port()
    with running(runner, port, args=(str(silent_echo), str(port), "1.0"),
                 env={"WS_DEMO_CLIENT": "0"}):
        with _ws(port) as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)  # nothing comes; the proxy closes the tunnel
            assert 0.8 < time.monotonic() - started < 5
