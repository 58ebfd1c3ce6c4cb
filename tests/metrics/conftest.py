"""In-process proxies for the tracing tests: served from an event loop in a thread,
so the test reads the spans the OpenTelemetry SDK recorded in this process."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Iterator

import pytest
import uvloop

from propylon.proxy.service import HttpProxyApp
from propylon.server.shutdown import ShutdownWatch


@pytest.fixture
def serve() -> Iterator[Callable[[Any, Any], str]]:
    """``serve(proxy, observer)`` runs the proxy on a free port; returns its URL."""
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers = []

    def start(proxy, observer) -> str:
        app = HttpProxyApp(proxy, None, None, observer)

        async def listen():
            return await asyncio.get_running_loop().create_server(
                app.protocol_factory(ShutdownWatch()), "127.0.0.1", 0)

        server = asyncio.run_coroutine_threadsafe(listen(), loop).result(10)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    try:
        yield start
    finally:
        for server in servers:
            loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
