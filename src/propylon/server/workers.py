"""The master process for ``threads: N`` > 1: forks N workers and supervises them.

The master binds every listening socket before forking, so each worker inherits
them (one shared socket per endpoint with ``work_stealing: true``; one
``SO_REUSEPORT`` socket per worker and endpoint with ``false``). It runs no event
loop: it sleeps in ``sigtimedwait`` and reacts to signals.

* A worker that dies while the server is not stopping is logged and restarted
  with the same index (after a one-second pause if it died within a second of
  starting, so a crashing worker cannot make the master spin).
* SIGTERM and SIGINT are relayed to the workers; the master exits once they all
  did (workers still running after the grace period, the shutdown timeout and a
  margin are killed).
* SIGHUP is passed on to every worker.
* SIGQUIT hands the listening sockets to the new process (``-u``), then stops
  the workers as on SIGTERM.
* SIGUSR1 is relayed to the workers (an access log reopens its file); a worker
  with nothing to reopen ignores it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import time
from typing import Callable, Optional

from .configuration import ServerConf
from .upgrade import UpgradeError, send_listeners

__all__ = ["Master"]

log = logging.getLogger("propylon.server")

_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR1}
_PR_SET_PDEATHSIG = 1
_FAST_EXIT_WAIT = 2.0
_KILL_MARGIN = 5.0


class Master:
    """Supervises ``conf.threads`` workers; ``run_worker(index)`` is called in each
    forked child and returns its exit code."""

    def __init__(self, conf: ServerConf, run_worker: Callable[[int], int],
                 upgrade_sockets: list[tuple[str, socket.socket]],
                 on_exit: Optional[Callable[[], None]] = None) -> None:
        self.conf = conf
        self.run_worker = run_worker
        self.upgrade_sockets = upgrade_sockets
        self.on_exit = on_exit
        self.workers: dict[int, int] = {}  # pid -> index
        self.started: dict[int, float] = {}  # index -> monotonic start time
        self.restart_at: dict[int, float] = {}  # index -> when to restart
        self.stopping = False
        self.deadline: Optional[float] = None

    def run(self) -> int:
        """Start the workers and supervise them until they have all exited."""
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        for index in range(self.conf.threads):
            self._spawn(index)
        log.info("master running with %d workers (work_stealing: %s)",
                 self.conf.threads, self.conf.work_stealing)
        while True:
            info = signal.sigtimedwait(_SIGNALS, 0.5)
            if info is not None:
                self._on_signal(info.si_signo)
            self._reap()
            now = time.monotonic()
            if not self.stopping:
                for index, when in list(self.restart_at.items()):
                    if now >= when:
                        del self.restart_at[index]
                        self._spawn(index)
            elif not self.workers:
                break
            elif self.deadline is not None and now > self.deadline:
                log.warning("killing %d worker(s) that did not exit in time", len(self.workers))
                for pid in self.workers:
                    _kill(pid, signal.SIGKILL)
                self.deadline = None
        log.info("all workers exited")
        if self.on_exit is not None:
            self.on_exit()
        return 0

    # --- signals -------------------------------------------------------------------------
    def _on_signal(self, signo: int) -> None:
        if signo == signal.SIGTERM:
            log.info("SIGTERM received, gracefully stopping the workers")
            self._stop(signal.SIGTERM, self.conf.grace_period + self.conf.graceful_shutdown_timeout
                       + _KILL_MARGIN)
        elif signo == signal.SIGINT:
            log.info("SIGINT received, exiting")
            self._stop(signal.SIGINT, _FAST_EXIT_WAIT)
        elif signo == signal.SIGQUIT:
            if self.stopping:
                return
            log.info("SIGQUIT received, sending the listening sockets to the new process")
            try:
                n = send_listeners(self.conf.upgrade_sock, self.upgrade_sockets, self.conf.upgrade_retries)
            except UpgradeError as e:
                log.error("graceful upgrade failed, still serving: %s", e)
                return
            log.info("handed %d listening socket(s) to the new process; draining the workers", n)
            self._close_listeners()
            self._stop(signal.SIGTERM, self.conf.grace_period + self.conf.graceful_shutdown_timeout
                       + _KILL_MARGIN)
        elif signo == signal.SIGHUP:
            # Reloading is the workers' business (the gateway's configuration, say).
            log.info("SIGHUP received, passing it to the workers")
            for pid in self.workers:
                _kill(pid, signal.SIGHUP)
        elif signo == signal.SIGUSR1:
            # logrotate's "reopen your files": the workers hold them.
            log.info("SIGUSR1 received, relayed to the workers")
            for pid in self.workers:
                _kill(pid, signal.SIGUSR1)

    def _stop(self, signo: int, wait: float) -> None:
        if self.stopping and signo == signal.SIGTERM:
            return
        self.stopping = True
        self.restart_at.clear()
        self.deadline = time.monotonic() + wait
        for pid in self.workers:
            _kill(pid, signo)

    def _close_listeners(self) -> None:
        # The new process holds its own copies now; ours only keep the workers'
        # replacements possible, which no longer happen.
        for _, sock in self.upgrade_sockets:
            sock.close()

    # --- workers -------------------------------------------------------------------------
    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            index = self.workers.pop(pid, None)
            if index is None:
                continue
            if self.stopping:
                log.info("worker %d (pid %d) exited", index, pid)
                continue
            log.error("worker %d (pid %d) exited unexpectedly (%s); restarting it",
                      index, pid, _describe_status(status))
            quick = time.monotonic() - self.started.get(index, 0) < 1.0
            self.restart_at[index] = time.monotonic() + (1.0 if quick else 0.0)

    def _spawn(self, index: int) -> None:
        master = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
                for sig in (signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR1):
                    signal.signal(sig, signal.SIG_DFL if sig == signal.SIGCHLD else signal.SIG_IGN)
                _die_with_parent(master)
                code = self.run_worker(index)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                log.exception("worker %d crashed", index)
            finally:
                for h in logging.getLogger().handlers:
                    h.flush()
                os._exit(code)
        self.workers[pid] = index
        self.started[index] = time.monotonic()
        log.info("worker %d started (pid %d)", index, pid)


def _die_with_parent(master: int) -> None:
    """Ask the kernel to SIGTERM this worker if the master dies (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != master:  # the master died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _kill(pid: int, signo: int) -> None:
    try:
        os.kill(pid, signo)
    except ProcessLookupError:
        pass


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
