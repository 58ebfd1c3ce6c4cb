"""A test server whose connections stay open until the client sends a line.

Listens on 127.0.0.1:0 (the port is in the log). Also runs two background
services: "everywhere" in every worker and "once" with run_once=True; each logs
the pid it runs in.
"""

import logging
import os

from propylon.apps import ServerApp
from propylon.server import Server
from propylon.services import Service, background_service

log = logging.getLogger("hold")


class HoldApp(ServerApp):
    async def process_new(self, stream, shutdown):
        log.info("holding a connection from %s", stream.peer_addr)
        line = await stream.read()
        await stream.write_all(b"done " + line)
        return None


class Announce:
    def __init__(self, what):
        self.what = what

    async def start(self, shutdown):
        log.info("%s service in pid %d", self.what, os.getpid())
        await shutdown.wait()


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    svc = Service("hold", HoldApp())
    svc.add_tcp("127.0.0.1:0")
    server.add_service(svc)
    server.add_service(background_service("everywhere", Announce("everywhere")))
    server.add_service(background_service("once", Announce("once"), run_once=True))
    server.run_forever()


if __name__ == "__main__":
    main()
