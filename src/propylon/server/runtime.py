"""One process's event loop: runs the services and handles the shutdown signals.

Used as is for ``threads: 1`` (the whole server is this one process) and in each
worker process otherwise (the master relays signals to it).

Signals:

* SIGTERM – graceful shutdown: stop accepting, set the :class:`ShutdownWatch`, wait
  up to ``grace_period`` for listening apps to drain and background services to
  return (returning early once they all did), then up to
  ``graceful_shutdown_timeout`` more, then cancel what is left and exit 0.
* SIGINT – fast shutdown: exit at once.
* SIGQUIT – graceful upgrade (single process only; workers leave it to the
  master): hand the listening sockets to the new process, then as SIGTERM.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from typing import Callable, Optional

from ..shutdown import ShutdownWatch
from ..services.background import GenBackgroundService
from ..services.listeners import Listener
from ..services.listening import Service
from .configuration import ServerConf
from .upgrade import UpgradeError, send_listeners

__all__ = ["ProcessRuntime"]

log = logging.getLogger("propylon.server")

Bound = list[tuple[Service, list[tuple[Listener, socket.socket]]]]


class ProcessRuntime:
    """Runs listening and background services on one event loop until shutdown.

    ``worker_index`` is None in single-process mode, else the worker's number
    (``run_once`` background services run only where it is None or 0).
    ``upgrade_sockets`` are the sockets to hand over on SIGQUIT (single-process
    mode only). ``on_exit`` runs just before the process ends.
    """

    def __init__(self, conf: ServerConf, bound: Bound, background: list[GenBackgroundService], *,
                 worker_index: Optional[int] = None,
                 upgrade_sockets: Optional[list[tuple[str, socket.socket]]] = None,
                 on_exit: Optional[Callable[[], None]] = None) -> None:
        self.conf = conf
        self.bound = bound
        self.background = [b for b in background if not b.run_once or worker_index in (None, 0)]
        self.worker_index = worker_index
        self.upgrade_sockets = upgrade_sockets
        self.on_exit = on_exit
        self.shutdown = ShutdownWatch()
        self._stop: Optional[asyncio.Future] = None
        self._stopping = False

    def run(self) -> int:
        """Run the event loop to the end; returns the exit code."""
        return asyncio.run(self._main())

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        if self.worker_index is None:
            loop.add_signal_handler(signal.SIGQUIT, self._on_sigquit)
            # logrotate's SIGUSR1 must not kill a server that has no access log to
            # reopen (its default action); an access log installs its own handler.
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        try:
            for service, sockets in self.bound:
                await service.start_serving(sockets, self.shutdown)
        except Exception:
            log.exception("cannot start the listening services")
            self._finish()
            return 1
        tasks = [loop.create_task(self._run_background(b), name=b.name) for b in self.background]
        # Everything built so far (modules, configuration, services) lives as long as
        # the process: move it out of the collector's sight, so the full collections
        # that request garbage triggers stay short instead of walking it each time.
        gc.freeze()
        log.info("server running (%s)",
                 "single process" if self.worker_index is None else f"worker {self.worker_index}")
        while True:
            reason = await self._stop
            if reason == "upgrade" and not await self._hand_over():
                self._stop = loop.create_future()
                self._stopping = False
                continue
            break
        await self._graceful(tasks)
        self._finish()
        return 0

    # --- signals -------------------------------------------------------------------------
    def _on_sigterm(self) -> None:
        if self._stopping:
            log.info("SIGTERM received again; already shutting down")
            return
        log.info("SIGTERM received, gracefully exiting")
        self._stopping = True
        self._stop.set_result("graceful")

    def _on_sigint(self) -> None:
        log.info("SIGINT received, exiting")
        for service, _ in self.bound:
            service.stop_accepting()
        self._finish()
        os._exit(0)

    def _on_sigquit(self) -> None:
        if self._stopping:
            return
        log.info("SIGQUIT received, sending the listening sockets to the new process")
        self._stopping = True
        self._stop.set_result("upgrade")

    # --- phases --------------------------------------------------------------------------
    async def _hand_over(self) -> bool:
        try:
            n = await asyncio.to_thread(send_listeners, self.conf.upgrade_sock,
                                        self.upgrade_sockets or [], self.conf.upgrade_retries)
        except UpgradeError as e:
            log.error("graceful upgrade failed, still serving: %s", e)
            return False
        log.info("handed %d listening socket(s) to the new process; draining", n)
        return True

    async def _graceful(self, tasks: list[asyncio.Task]) -> None:
        for service, _ in self.bound:
            service.stop_accepting()
        self.shutdown.trigger()
        loop = asyncio.get_running_loop()
        waits = [loop.create_task(s.wait_drained(), name=f"{s.name} connections")
                 for s, _ in self.bound] + tasks
        pending = {t for t in waits if not t.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self.conf.grace_period)
        if pending:
            log.info("grace period (%ss) over, %d task(s) still running; waiting up to %ss more",
                     self.conf.grace_period, len(pending), self.conf.graceful_shutdown_timeout)
            _, pending = await asyncio.wait(pending, timeout=self.conf.graceful_shutdown_timeout)
        if pending:
            log.warning("cancelling %d unfinished task(s): %s", len(pending),
                        ", ".join(sorted(t.get_name() for t in pending)))
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=1)
        log.info("graceful shutdown complete")

    async def _run_background(self, service: GenBackgroundService) -> None:
        log.debug("starting background service %s", service.name)
        try:
            await service.start(self.shutdown)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background service %s failed", service.name)
        else:
            log.info("background service %s exited", service.name)

    def _finish(self) -> None:
        if self.on_exit is not None:
            try:
                self.on_exit()
            except Exception:
                log.exception("error while cleaning up")
        for h in logging.getLogger().handlers:
            h.flush()
