"""Entry point of one member process: ``python -m propylon.lab._runner NAME ...``.

The process binds its member, writes one line ``READY <json endpoints>`` to stdout,
and serves until SIGTERM/SIGINT or until its stdin reaches end of file (the parent
lab went away, so a crashed test run leaves no member holding a port). If the member
cannot start, it writes ``FAILED <reason>`` and exits with status 2.

``--workers N`` (HTTP members on TCP only) binds the listening socket once and forks
N-1 more processes that accept on it too, for benchmarks where one Python process
would be the bottleneck. The workers share the process group, so the lab stops,
freezes and resumes them together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Optional

from ._base import HttpMember, MemberConfig
from .certs import LabCerts
from .registry import member_class

log = logging.getLogger("propylon.lab")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="propylon.lab._runner")
    p.add_argument("name")
    p.add_argument("--certs", required=True)
    p.add_argument("--ports", default=None, help="comma-separated ports (0 = any free)")
    p.add_argument("--uds", default=None)
    p.add_argument("--workers", type=int, default=1)
    return p.parse_args(argv)


def _config(args: argparse.Namespace, sock: Optional[socket.socket]) -> MemberConfig:
    ports = [int(p) for p in args.ports.split(",")] if args.ports else None
    return MemberConfig(LabCerts(Path(args.certs)), ports, args.uds,
                        sockets=[sock] if sock is not None else None)


def _fail(exc: BaseException) -> int:
    """Report a start failure to the parent lab, in one line."""
    sys.stdout.write(f"FAILED {type(exc).__name__}: {exc}\n")
    sys.stdout.flush()
    return 2


async def _run(args: argparse.Namespace, sock: Optional[socket.socket], report: bool) -> int:
    member = member_class(args.name)(_config(args, sock))
    try:
        endpoints = await member.start()
    except Exception as exc:
        return _fail(exc) if report else 2
    if report:
        sys.stdout.write("READY " + json.dumps([e.as_dict() for e in endpoints]) + "\n")
        sys.stdout.flush()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = loop.create_task(_watch_parent(stop))
    await stop.wait()
    watcher.cancel()
    await member.close()
    return 0


async def _watch_parent(stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin closes: the parent that holds its other end is gone."""
    try:
        if not stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
            return  # not started by a lab (a terminal, /dev/null): rely on signals
    except (OSError, ValueError, AttributeError):
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (OSError, ValueError):
        return  # stdin is not a pipe (started by hand): rely on signals
    while await reader.read(4096):
        pass
    stop.set()


def _prebind(args: argparse.Namespace) -> socket.socket:
    """The listening socket the workers share (only HTTP members over TCP can do this)."""
    cls = member_class(args.name)
    if not issubclass(cls, HttpMember) or cls.uds:
        raise ValueError(f"member {args.name!r} cannot run several workers")
    port = int(args.ports.split(",")[0]) if args.ports else cls.default_port
    return socket.create_server(("127.0.0.1", port), backlog=1024)


def _serve(args: argparse.Namespace, sock: Optional[socket.socket], report: bool) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_run(args, sock, report))
    return uvloop.run(_run(args, sock, report))


def main(argv: list[str] | None = None) -> int:
    """Run one member until told to stop; return the process exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("PROPYLON_LAB_LOG_LEVEL", "WARNING"),
                        format=f"%(asctime)s {args.name} %(levelname)s %(name)s: %(message)s")
    if args.workers <= 1:
        return _serve(args, None, True)
    try:
        sock = _prebind(args)
    except (OSError, ValueError) as exc:
        return _fail(exc)
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()  # before any event loop or thread exists
        if pid == 0:
            os._exit(_serve(args, sock, False))
        children.append(pid)
    try:
        return _serve(args, sock, True)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


if __name__ == "__main__":
    sys.exit(main())
