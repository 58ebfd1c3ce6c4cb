"""In-process proxies for the tracing and limiter tests: served from an event loop in
a thread, so the test reads what the observer recorded in this process."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterator

import pytest

from propylon.proxy.service import HttpProxyApp
from propylon.shutdown import ShutdownWatch
from support import LoopThread


@pytest.fixture
def serve() -> Iterator[Callable[[Any, Any], str]]:
    """``serve(proxy, observer)`` runs the proxy on a free port; returns its URL."""
    lt = LoopThread()
    servers = []

    def start(proxy, observer) -> str:
        app = HttpProxyApp(proxy, observer=observer)

        async def listen():
            return await asyncio.get_running_loop().create_server(
                app.protocol_factory(ShutdownWatch()), "127.0.0.1", 0)

        server = lt.run(listen())
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    try:
        yield start
    finally:
        for server in servers:
            lt.loop.call_soon_threadsafe(server.close)
        lt.close()
