"""Running a listening Service inside the test process, on a uvloop event loop."""

from __future__ import annotations

import asyncio
from typing import Optional

import uvloop

from propylon.server import ShutdownWatch
from propylon.services import Service


def run(coro, timeout: float = 20.0):
    """Run ``coro`` to completion on a fresh uvloop loop, bounded by ``timeout``."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(bounded())


async def start(service: Service, shutdown: Optional[ShutdownWatch] = None):
    """Bind the service's endpoints and start accepting; returns (shutdown, bound addresses)."""
    shutdown = shutdown or ShutdownWatch()
    bound = [(l, l.bind()) for l in service.listeners]
    addrs = [s.getsockname() for _, s in bound]
    await service.start_serving(bound, shutdown)
    return shutdown, addrs
