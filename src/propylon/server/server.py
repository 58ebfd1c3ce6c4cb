"""The server: configuration, start-up, the process model and the services it runs.

Typical use::

    server = Server.from_args()          # -c FILE, -d, -u, -t
    server.bootstrap()
    server.add_service(service)
    server.run_forever()                 # does not return

``run_forever`` daemonizes if asked, binds (or, with ``-u``, takes over) every
listening socket, then either serves in this very process (``threads: 1``) or
forks ``threads`` worker processes and supervises them. See ``runtime`` for the
signals a serving process handles and ``workers`` for the master.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any, Iterable, NoReturn, Optional

from ..services.background import GenBackgroundService, background_service
from ..services.listeners import Listener
from ..services.listening import Service
from . import daemon as _daemon
from .configuration import ConfigError, ServerConf
from .logs import setup_logging
from .options import Opt
from .runtime import ProcessRuntime
from .upgrade import UpgradeError, receive_listeners
from .workers import Master

__all__ = ["Server"]

log = logging.getLogger("propylon.server")


class _BoundListener:
    """One endpoint and its socket(s): one shared, or one per worker."""

    __slots__ = ("service", "listener", "sockets")

    def __init__(self, service: Service, listener: Listener, sockets: list[socket.socket]) -> None:
        self.service = service
        self.listener = listener
        self.sockets = sockets

    def socket_for(self, worker: int) -> socket.socket:
        return self.sockets[worker] if len(self.sockets) > 1 else self.sockets[0]


class Server:
    """A Propylon server process (Pingora's ``Server``).

    ``opt`` are the command-line options (default: none given); ``conf`` a ready
    :class:`ServerConf`, otherwise it is loaded from ``opt.conf`` (or the defaults).
    A configuration error is printed as one line on stderr and the process exits
    with status 1. Logging is set up from ``PROPYLON_LOG`` (default: warnings).
    """

    def __init__(self, opt: Optional[Opt] = None, conf: Optional[ServerConf] = None) -> None:
        setup_logging()
        self.options = opt if opt is not None else Opt()
        if conf is None:
            try:
                conf = ServerConf.load(self.options.conf) if self.options.conf else ServerConf()
            except ConfigError as e:
                _fail(str(e))
        if self.options.daemon:
            conf.daemon = True
        self.configuration: ServerConf = conf
        self.services: list[Service] = []
        self.background: list[GenBackgroundService] = []
        self._inherited: dict[str, list[socket.socket]] = {}
        self._bootstrapped = False
        self._wrote_pid = False

    @classmethod
    def from_args(cls, argv: Optional[Iterable[str]] = None) -> "Server":
        """Parse the standard flags from ``argv`` (default ``sys.argv[1:]``) and build a server."""
        return cls(Opt.parse_args(list(argv) if argv is not None else None))

    # --- start-up -------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Prepare to run: with ``-t`` validate and exit; with ``-u`` take over the
        listening sockets of the running instance (waiting on ``upgrade_sock``)."""
        if self._bootstrapped:
            return
        log.info("bootstrap starting")
        conf = self.configuration
        if self.options.test:
            try:
                conf.validate()
            except ConfigError as e:
                _fail(str(e))
            sys.stderr.write(conf.dump() + "\n")
            sys.stderr.write(f"Server Test passed ({conf.source or 'defaults'}), exiting\n")
            sys.stderr.flush()
            raise SystemExit(0)
        if self.options.upgrade:
            try:
                self._inherited = receive_listeners(conf.upgrade_sock, conf.upgrade_retries)
            except UpgradeError as e:
                log.error("graceful upgrade: %s; binding the listeners afresh", e)
        self._bootstrapped = True
        log.info("bootstrap done")

    def add_service(self, service: Any) -> None:
        """Add a listening :class:`Service` or a background service.

        Anything else with an async ``start(shutdown)`` method is wrapped with
        :func:`background_service` under its class name.
        """
        if isinstance(service, Service):
            self.services.append(service)
        elif isinstance(service, GenBackgroundService):
            self.background.append(service)
        elif callable(getattr(service, "start", None)):
            self.background.append(background_service(type(service).__name__, service))
        else:
            raise TypeError(f"not a service: {service!r}")

    def add_services(self, services: Iterable[Any]) -> None:
        """Add several services (see :meth:`add_service`)."""
        for s in services:
            self.add_service(s)

    # --- running --------------------------------------------------------------------------
    def run_forever(self) -> NoReturn:
        """Run until shut down by a signal, then exit the process (status 0 on a clean stop)."""
        self.bootstrap()
        conf = self.configuration
        try:
            conf.validate()
        except ConfigError as e:
            _fail(str(e))
        _use_uvloop()
        notifier = _daemon.daemonize(conf.error_log) if conf.daemon else None
        try:
            bound = self._bind_all()
        except (OSError, ValueError) as e:
            msg = f"cannot start: {e}"
            if notifier is None:
                _fail(msg)
            notifier.fail(msg)
            log.error("%s", msg)
            raise SystemExit(1)
        if notifier is not None:
            try:
                _daemon.write_pid_file(conf.pid_file)
                self._wrote_pid = True
                _daemon.drop_privileges(conf.user, conf.group)
            except (OSError, KeyError) as e:
                notifier.fail(f"cannot start the daemon: {e}")
                raise SystemExit(1)
            notifier.ready()
            log.info("daemon started, pid file %s", conf.pid_file)
        upgrade_sockets = [(b.listener.key, s) for b in bound for s in b.sockets]
        if conf.threads == 1:
            runtime = ProcessRuntime(conf, self._bound_for(bound, 0), self.background,
                                     upgrade_sockets=upgrade_sockets, on_exit=self._cleanup)
            code = runtime.run()
        else:
            code = Master(conf, lambda i: self._run_worker(bound, i), upgrade_sockets,
                          on_exit=self._cleanup).run()
        raise SystemExit(code)

    def _run_worker(self, bound: list[_BoundListener], index: int) -> int:
        mine = {id(b.socket_for(index)) for b in bound}
        for b in bound:
            for s in b.sockets:
                if id(s) not in mine:
                    s.close()
        return ProcessRuntime(self.configuration, self._bound_for(bound, index), self.background,
                              worker_index=index).run()

    @staticmethod
    def _bound_for(bound: list[_BoundListener], index: int):
        grouped: dict[int, tuple[Service, list]] = {}
        for b in bound:
            grouped.setdefault(id(b.service), (b.service, []))[1].append((b.listener, b.socket_for(index)))
        return list(grouped.values())

    def _bind_all(self) -> list[_BoundListener]:
        conf = self.configuration
        per_worker = conf.threads > 1 and not conf.work_stealing
        inherited = self._inherited
        out = []
        for service in self.services:
            if not service.listeners:
                log.warning("service %s has no listening endpoint", service.name)
            for listener in service.listeners:
                count = conf.threads if per_worker and listener.kind == "tcp" else 1
                socks = inherited.get(listener.key, [])[:count]
                del inherited.get(listener.key, [])[:count]
                for s in socks:
                    s.setblocking(False)
                while len(socks) < count:
                    # Extra SO_REUSEPORT sockets join the port the first one got (port 0).
                    port = socks[0].getsockname()[1] if socks and listener.kind == "tcp" else None
                    try:
                        socks.append(listener.bind(reuseport=per_worker, port=port))
                    except OSError as e:
                        for s in socks:
                            s.close()
                        raise OSError(e.errno, f"{service.name}: cannot listen on {listener.key}: "
                                               f"{e.strerror}") from None
                out.append(_BoundListener(service, listener, socks))
        for key, socks in inherited.items():
            for s in socks:
                log.warning("no listener matches the inherited socket %s; closing it", key)
                s.close()
        inherited.clear()
        return out

    def _cleanup(self) -> None:
        if self._wrote_pid:
            _daemon.remove_pid_file(self.configuration.pid_file)


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # a dependency, but keep running without it
        log.warning("uvloop is not installed; using the default asyncio event loop")
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _fail(message: str) -> NoReturn:
    """Report a start-up error as one line on stderr and exit with status 1."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)
