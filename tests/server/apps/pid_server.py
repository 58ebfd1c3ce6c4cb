"""A test server answering each connection with the pid of the process that accepted it.

Usage: python pid_server.py [-c conf] [-u] ...; listens on $PID_SERVER_ADDR
(default 127.0.0.1:0, the real port is in the log). $PID_SERVER_DENY names a peer
IP refused by a connection filter; $PID_SERVER_UDS adds a Unix socket endpoint.
"""

import os

from propylon.apps import ServerApp
from propylon.server import Server
from propylon.services import Service


class PidApp(ServerApp):
    async def process_new(self, stream, shutdown):
        await stream.write_all(f"{os.getpid()}\n".encode())
        return None


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    svc = Service("pid", PidApp())
    svc.add_tcp(os.environ.get("PID_SERVER_ADDR", "127.0.0.1:0"))
    if os.environ.get("PID_SERVER_UDS"):
        svc.add_uds(os.environ["PID_SERVER_UDS"], perms=0o600)
    deny = os.environ.get("PID_SERVER_DENY")
    if deny:
        svc.set_connection_filter(lambda peer: peer is None or peer[0] != deny)
    server.add_service(svc)
    server.run_forever()


if __name__ == "__main__":
    main()
