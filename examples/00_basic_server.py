"""Lesson 0: the raw event loop – a TCP echo server on 127.0.0.1:6142.

    PROPYLON_LOG=info python examples/00_basic_server.py
    nc 127.0.0.1 6142        # type a line, it comes back

No HTTP here: a ServerApp gets the raw byte stream of every accepted connection.
"""

import logging

from propylon.apps import ServerApp
from propylon.protocols.l4 import Stream
from propylon.server import Server, ShutdownWatch
from propylon.services import Service

log = logging.getLogger("echo")


class EchoApp(ServerApp):
    """Sends every byte it receives straight back."""

    async def process_new(self, stream: Stream, shutdown: ShutdownWatch):
        # The digest is gathered once at accept time: peer and local addresses.
        log.info("New connection from: %s", stream.digest.socket.peer_addr)
        while True:
            # Checked between reads so a restart never waits on a busy echo loop.
            if shutdown:
                log.info("Server shutting down, closing connection")
                return None
            try:
                data = await stream.read(1024)
            except ConnectionError as e:
                log.error("Stream read error: %s", e)
                return None
            if not data:
                log.info("Client closed connection")
                return None
            try:
                # write_all waits while the peer is slow to read (back-pressure).
                await stream.write_all(data)
            except ConnectionError as e:
                log.error("Failed to write to stream: %s", e)
                return None


def main() -> None:
    server = Server.from_args()      # -c FILE, -d, -u, -t
    server.bootstrap()
    service = Service("Echo Service", EchoApp())
    service.add_tcp("127.0.0.1:6142")
    server.add_service(service)
    log.info("Starting server on 127.0.0.1:6142...")
    server.run_forever()


if __name__ == "__main__":
    main()
