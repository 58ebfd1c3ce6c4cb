"""Lesson 1: configuration and lifecycle – load a YAML file and show every setting.

    PROPYLON_LOG=info python examples/01_configuration.py                        # defaults
    PROPYLON_LOG=info python examples/01_configuration.py -c conf/01_config.yaml  # threads: 2 ...
    python examples/01_configuration.py -t -c conf/01_config.yaml                 # validate only

A typo'd key or a wrong type stops the program with one line naming the file and field.
"""

import logging

from propylon.apps import ServerApp
from propylon.server import Server
from propylon.services import Service

log = logging.getLogger("config_demo")


class ConfigDemoApp(ServerApp):
    """Serves nothing: every connection is closed at once."""

    async def process_new(self, stream, shutdown):
        return None


def main() -> None:
    server = Server.from_args()
    conf = server.configuration

    log.info("--- Configuration Loaded (%s) ---", conf.source or "defaults")
    for line in conf.dump().splitlines():
        log.info("  %s", line)
    log.info("----------------------------")

    server.bootstrap()
    service = Service("ConfigDemo", ConfigDemoApp())
    service.add_tcp("127.0.0.1:6143")
    server.add_service(service)
    log.info("Starting server. Verify the thread count in the logs above matches your YAML.")
    server.run_forever()


if __name__ == "__main__":
    main()
