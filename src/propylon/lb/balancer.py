"""``LoadBalancer``: selection over a live backend set, plus its background loop."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, Callable, Iterable, Optional

from ..shutdown import ShutdownWatch
from .backend import Backend
from .backends import Backends, BackendHealth
from .discovery import BackendLike, Static
from .selection import RoundRobin, Selector

__all__ = ["LoadBalancer"]

log = logging.getLogger("propylon.lb")


class LoadBalancer:
    """Pick a backend per request with ``selection``, skipping unready backends.

    ``selection`` is a selector class (``RoundRobin`` by default, ``Random``,
    ``FNVHash``, ``Consistent``) built once per backend set; a new set builds a new
    selector that replaces the old one in a single assignment.

    Attributes (Pingora's defaults): ``health_check_frequency`` and
    ``update_frequency`` in seconds, ``None`` meaning "once, at start";
    ``parallel_health_check`` ``False``. Run :meth:`start` as a background service
    for discovery updates and health checks.
    """

    def __init__(self, backends: Backends, selection: type = RoundRobin, config: Any = None) -> None:
        self._backends = backends
        self.selection = selection
        self.config = config
        self._selector: Selector = selection.build(backends.get_backend(), config)
        self.health_check_frequency: Optional[float] = None
        self.update_frequency: Optional[float] = None
        self.parallel_health_check: bool = False

    # --- construction -------------------------------------------------------------
    @classmethod
    def try_from_iter(cls, addrs: Iterable[BackendLike], selection: type = RoundRobin) -> "LoadBalancer":
        """A balancer over a static list (``"127.0.0.1:18080"``, ``Backend``, or
        ``(addr, weight)``), filled at once. Names such as ``localhost:80`` are
        resolved here, blocking: call it at start-up, not inside a request.
        Raises ``ValueError`` naming a bad address."""
        discovery = Static.from_iter(addrs)
        lb = cls(Backends(discovery), selection)
        lb._backends.apply(discovery.get(), {}, lb._rebuild)
        return lb

    @classmethod
    def from_backends(cls, backends: Backends, selection: type = RoundRobin, config: Any = None) -> "LoadBalancer":
        """A balancer over ``backends``; empty until the first :meth:`update`."""
        return cls(backends, selection, config)

    # --- selection (hot path) ---------------------------------------------------------
    def select(self, key: bytes = b"", max_iterations: int = 256) -> Optional[Backend]:
        """The first ready backend in the algorithm's order for ``key``, or ``None``.

        ``key`` feeds the hash algorithms and is ignored by round robin and random;
        at most ``max_iterations`` candidates are looked at.
        """
        return self._selector.pick(key, max_iterations, None, self._backends.ready)

    def select_with(
        self, key: bytes, max_iterations: int, accept: Callable[[Backend, bool], bool]
    ) -> Optional[Backend]:
        """Like :meth:`select`, but ``accept(backend, ready)`` decides each candidate."""
        return self._selector.pick(key, max_iterations, accept, self._backends.ready)

    # --- state ------------------------------------------------------------------------
    @property
    def backends(self) -> Backends:
        """The :class:`Backends` (set, health, enablement)."""
        return self._backends

    def set_health_check(self, hc: Any) -> None:
        """Use ``hc`` (a :class:`~propylon.lb.HealthCheck`) for health checks."""
        self._backends.set_health_check(hc)

    def health_snapshot(self) -> list[BackendHealth]:
        """``(backend, healthy, enabled, last_error)`` for every current backend."""
        return self._backends.health_snapshot()

    def _rebuild(self, ordered: tuple) -> None:
        self._selector = self.selection.build(ordered, self.config)

    async def update(self) -> bool:
        """Run discovery once and swap in a new selector if the set changed.

        Returns whether it changed; discovery errors propagate."""
        return await self._backends.update(self._rebuild)

    # --- background service -----------------------------------------------------------
    async def start(
        self, shutdown: Optional[ShutdownWatch] = None, ready: Optional[Callable[[], Any]] = None
    ) -> None:
        """The background loop: update, health checks, sleep; repeat.

        Each task runs at start and then every ``update_frequency`` /
        ``health_check_frequency`` seconds; the loop returns when both are ``None``
        (after the first round) or, promptly, when ``shutdown`` is set (an
        in-flight health-check round is cancelled). ``ready``, if given, is called
        once after the first discovery update, when the selector is built.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        next_update = next_check = now
        last_update_error: Optional[str] = None
        while not (shutdown is not None and shutdown.is_set()):
            if next_update <= now:
                try:
                    if not await _until_shutdown(self.update(), shutdown):
                        return
                    last_update_error = None
                except Exception as e:  # keep serving the current set
                    text = str(e)
                    if text != last_update_error:
                        log.warning("backend discovery failed: %s", text)
                        last_update_error = text
                next_update = now + _period(self.update_frequency)
            if ready is not None:
                ready()
                ready = None
            if next_check <= now:
                if not await _until_shutdown(
                    self._backends.run_health_check(self.parallel_health_check), shutdown
                ):
                    return
                next_check = now + _period(self.health_check_frequency)
            if self.update_frequency is None and self.health_check_frequency is None:
                return
            delay = max(0.0, min(next_update, next_check) - loop.time())
            if not await _until_shutdown(asyncio.sleep(delay), shutdown):
                return
            now = loop.time()


def _period(freq: Optional[float]) -> float:
    return math.inf if freq is None else freq


async def _until_shutdown(coro: Any, shutdown: Optional[ShutdownWatch]) -> bool:
    """Run ``coro``; False (and ``coro`` cancelled) if ``shutdown`` is set first."""
    if shutdown is None:
        await coro
        return True
    if shutdown.is_set():
        coro.close()
        return False
    work = asyncio.ensure_future(coro)
    stop = asyncio.ensure_future(shutdown.wait())
    try:
        await asyncio.wait((work, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        pending = [t for t in (work, stop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    if work.done() and not work.cancelled():
        work.result()
        return True
    return False
