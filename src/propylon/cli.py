"""The ``propylon`` command.

    propylon run [-c FILE] [-d] [-u] [-t]   the gateway (no config: the embedded demo)
    propylon lab [--certs DIR] [--only ...]  Propylon City, the loopback lab upstreams

``-c`` takes a gateway file (one with ``listeners``/``routes``/``clusters``/``include``
at the top; its ``server:`` section holds the server options) or a plain server
file. With a gateway file, ``-t`` validates it, prints the routing table and exits
(status 1 and one line per problem when it is refused).
"""

from __future__ import annotations

import signal
import sys
from typing import Optional, Sequence

USAGE = __doc__.strip()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command == "run":
        return _run(rest)
    if command == "lab":
        from .lab.cli import main as lab_main

        return lab_main(rest, prog="propylon lab")
    print(f"propylon: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


def _run(argv: list[str]) -> int:
    from .server.options import Opt

    opt = Opt.parse_args(argv)
    if opt.conf:
        from .gateway.config import looks_like_gateway

        if looks_like_gateway(opt.conf):
            return _run_gateway(opt)
    return _run_demo(opt)


def _run_gateway(opt) -> int:
    from .gateway.config import GatewayConfigError, server_conf
    from .gateway.runtime import Gateway
    from .gateway.serve import listener_problems, routing_table
    from .server.server import Server

    try:
        gateway = Gateway.from_file(opt.conf, keep_state=not opt.test)
        problems = listener_problems(gateway.current.conf)
        if problems:
            raise GatewayConfigError(problems)
    except GatewayConfigError as e:
        for problem in e.problems:
            print(f"{opt.conf}: {problem}", file=sys.stderr)
        return 1
    if opt.test:
        print(routing_table(gateway.current))
        print(f"{opt.conf}: configuration OK", file=sys.stderr)
        return 0
    server = Server(opt, server_conf(gateway.current.conf, opt.conf))
    server.bootstrap()
    return _serve(server, gateway)


def _run_demo(opt) -> int:
    """The gateway file shipped in the package, with the lab upstreams it needs. A plain
    server file given with ``-c`` still sets the server's options."""
    from .gateway import demo
    from .gateway.config import server_conf
    from .gateway.runtime import Gateway
    from .server.server import Server

    # Nothing is written beside the shipped file (no version history, no last good copy).
    gateway = Gateway.from_file(demo.CONFIG, keep_state=False)
    server = Server(opt, None if opt.conf else server_conf(gateway.current.conf, demo.CONFIG))
    server.bootstrap()
    demo.start_lab()
    print(demo.BANNER, flush=True)
    return _serve(server, gateway)


def _serve(server, gateway) -> int:
    from .gateway.serve import add_gateway_services

    add_gateway_services(server, gateway)
    # Until the gateway's loop takes SIGHUP over, a reload request must not end the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    server.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
