"""Lesson 5: a listening service and a background service sharing state.

    PROPYLON_LOG=info python examples/05_background_services.py
    echo hi | nc -q1 127.0.0.1 6145        # "Hello! You are visitor #1"

The exporter logs the connection count every 2 seconds. Both services run on the
same event loop, so a plain object is enough to share the counter: no locks or
atomics. (With `threads: N` each worker process has its own copy; state that must
be exact across processes belongs in Redis.)
"""

import asyncio
import logging

from propylon.apps import ServerApp
from propylon.server import Server, ShutdownWatch
from propylon.services import BackgroundService, Service, background_service

log = logging.getLogger("traffic")


class AppState:
    """What the two services share."""

    def __init__(self) -> None:
        self.connection_count = 0


class CounterApp(ServerApp):
    """Counts each connection and greets the visitor with its number."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    async def process_new(self, stream, shutdown):
        self.state.connection_count += 1
        count = self.state.connection_count
        log.info("Traffic: New connection handled. Count is now %d", count)
        await stream.write_all(f"Hello! You are visitor #{count}\n".encode())
        return None


class MetricExporter(BackgroundService):
    """Reads the shared counter every 2 seconds until shutdown."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    async def start(self, shutdown: ShutdownWatch) -> None:
        log.info("Exporter: Service started.")
        while True:
            try:
                await asyncio.wait_for(shutdown.wait(), timeout=2.0)
                log.info("Exporter: Shutdown requested.")
                return
            except asyncio.TimeoutError:
                log.info("Exporter: Current Total Connections: %d", self.state.connection_count)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()

    state = AppState()
    traffic = Service("Traffic", CounterApp(state))
    traffic.add_tcp("127.0.0.1:6145")
    server.add_service(traffic)
    server.add_service(background_service("MetricExporter", MetricExporter(state)))

    log.info("Server started. Traffic on port 6145. Metrics in logs.")
    server.run_forever()


if __name__ == "__main__":
    main()
