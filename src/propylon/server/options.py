"""Command-line options shared by every Propylon server (Pingora's ``Opt``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional, Sequence

__all__ = ["Opt"]


@dataclass
class Opt:
    """The standard flags: ``-c/--conf FILE``, ``-d/--daemon``, ``-u/--upgrade``, ``-t/--test``.

    * ``conf`` – YAML file with the :class:`~propylon.server.configuration.ServerConf` (None: defaults).
    * ``daemon`` – run in the background; overrides ``daemon`` from the file when set.
    * ``upgrade`` – take the listening sockets over from a running instance through
      ``upgrade_sock`` instead of binding them (graceful upgrade).
    * ``test`` – load and validate the configuration, then exit.
    * ``nocapture`` – accepted for compatibility with Pingora test harnesses, unused.
    """

    upgrade: bool = False
    daemon: bool = False
    nocapture: bool = False
    test: bool = False
    conf: Optional[str] = None

    @classmethod
    def parser(cls, prog: Optional[str] = None) -> argparse.ArgumentParser:
        """The argparse parser, for programs that want to add their own flags."""
        p = argparse.ArgumentParser(prog=prog, description="Run a Propylon server.")
        p.add_argument("-u", "--upgrade", action="store_true",
                       help="take over the listening sockets of a running instance (graceful upgrade)")
        p.add_argument("-d", "--daemon", action="store_true", help="run in the background")
        p.add_argument("--nocapture", action="store_true", help=argparse.SUPPRESS)
        p.add_argument("-t", "--test", action="store_true",
                       help="test the configuration and exit")
        p.add_argument("-c", "--conf", metavar="FILE", help="path to the server configuration (YAML)")
        return p

    @classmethod
    def parse_args(cls, argv: Optional[Sequence[str]] = None) -> "Opt":
        """Parse ``argv`` (default: ``sys.argv[1:]``); ``-h`` prints help and exits."""
        ns = cls.parser().parse_args(argv)
        return cls(upgrade=ns.upgrade, daemon=ns.daemon, nocapture=ns.nocapture,
                   test=ns.test, conf=ns.conf)
