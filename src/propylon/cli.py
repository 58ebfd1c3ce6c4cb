"""The ``propylon`` command.

    propylon run [-c server.yaml] [-d] [-u] [-t]   the gateway (no gateway config: the embedded demo)
    propylon lab [--certs DIR] [--only ...]        Propylon City, the loopback lab upstreams
"""

from __future__ import annotations

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
    from .gateway import demo
    from .server.server import Server

    server = Server.from_args(argv)
    server.bootstrap()
    demo.start_lab()
    demo.build(server)
    print(demo.BANNER, flush=True)
    server.run_forever()


if __name__ == "__main__":
    sys.exit(main())
