"""Lesson 2: daemon mode and a background service that logs a heartbeat every second.

    PROPYLON_LOG=info python examples/02_daemon_mode.py -c conf/02_daemon.yaml
    cat /tmp/propylon_02.pid; tail -f /tmp/propylon_02.log
    kill $(cat /tmp/propylon_02.pid)     # graceful stop, logged in the file

The command returns once the daemon is running; its logs go to `error_log`.
"""

import asyncio
import logging
import os

from propylon.server import Server, ShutdownWatch
from propylon.services import BackgroundService, background_service

log = logging.getLogger("heartbeat")


class HeartbeatService(BackgroundService):
    """Logs a beep every second until shutdown."""

    async def start(self, shutdown: ShutdownWatch) -> None:
        log.info("Heartbeat service started. PID: %d", os.getpid())
        while True:
            try:
                # Wake for whichever comes first: shutdown or the next tick.
                await asyncio.wait_for(shutdown.wait(), timeout=1.0)
                log.info("Shutdown signal received. Stopping heartbeat.")
                return
            except asyncio.TimeoutError:
                log.info("Beep... (PID: %d)", os.getpid())


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    conf = server.configuration
    if conf.daemon:
        print(f"Preparing to daemonize. Logs will be redirected to: {conf.error_log}")
        print(f"Check the PID file at: {conf.pid_file}")
    else:
        print("Running in foreground mode. Pass '-d' or use a config file to daemonize.")
    server.add_service(background_service("Heartbeat", HeartbeatService()))
    server.run_forever()


if __name__ == "__main__":
    main()
