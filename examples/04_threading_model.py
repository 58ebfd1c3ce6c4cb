"""Lesson 4: the process model – two workers, each with its own event loop.

    PROPYLON_LOG=info python examples/04_threading_model.py
    for i in 1 2 3 4 5 6; do nc -q1 127.0.0.1 6144 </dev/null; done   # pids of both workers

Python has a GIL, so Pingora's worker threads are worker processes here. With
`work_stealing: false` each worker has its own SO_REUSEPORT socket and the kernel
shards connections between them (Pingora's NoSteal); with `true` (the default)
the workers share one socket and whichever is idle accepts. Given `-c FILE`, the
file decides; without one this example picks 2 workers without work stealing.
"""

import asyncio
import logging
import os

from propylon.apps import ServerApp
from propylon.server import Server, ShutdownWatch
from propylon.services import BackgroundService, Service, background_service

log = logging.getLogger("threading")


class ProcessReporterService(BackgroundService):
    """Announces, once a second, which worker process it runs in."""

    async def start(self, shutdown: ShutdownWatch) -> None:
        log.info("ProcessReporter started.")
        while not shutdown:
            log.info("I am running in worker process %d", os.getpid())
            try:
                await asyncio.wait_for(shutdown.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass


class WhoAmIApp(ServerApp):
    """Answers each connection with the pid of the worker that accepted it."""

    async def process_new(self, stream, shutdown):
        await stream.write_all(f"{os.getpid()}\n".encode())
        return None


def main() -> None:
    server = Server.from_args()
    if server.options.conf is None:
        server.configuration.threads = 2
        server.configuration.work_stealing = False
    server.bootstrap()

    server.add_service(background_service("Reporter-A", ProcessReporterService()))
    server.add_service(background_service("Reporter-B", ProcessReporterService()))
    whoami = Service("WhoAmI", WhoAmIApp())
    whoami.add_tcp("127.0.0.1:6144")
    server.add_service(whoami)

    conf = server.configuration
    log.info("Server starting with threads = %d, work_stealing = %s.", conf.threads, conf.work_stealing)
    server.run_forever()


if __name__ == "__main__":
    main()
