"""``Backends``: the current backend set, its health, and the health-check rounds."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable, NamedTuple, Optional

from .backend import Backend
from .health import Health

__all__ = ["Backends", "BackendHealth"]

log = logging.getLogger("propylon.lb")


class BackendHealth(NamedTuple):
    """One row of :meth:`Backends.health_snapshot`."""

    backend: Backend
    healthy: bool
    enabled: bool
    last_error: Optional[BaseException]


class Backends:
    """The backends found by ``discovery`` and the health of each.

    ``health_check`` (default ``None``) is an object following the
    :class:`~propylon.lb.HealthCheck` contract. Health is keyed by
    ``Backend.hash_key`` and carried over when the set changes; new backends start
    healthy and enabled.
    """

    def __init__(self, discovery: Any, health_check: Any = None) -> None:
        self.discovery = discovery
        self.health_check = health_check
        self._backends: tuple[Backend, ...] = ()
        self._set: frozenset = frozenset()
        self._health: dict[int, Health] = {}

    def set_health_check(self, hc: Any) -> None:
        """Use ``hc`` for future health-check rounds."""
        self.health_check = hc

    # --- updates ----------------------------------------------------------------
    async def update(self, on_change: Optional[Callable[[tuple], None]] = None) -> bool:
        """Ask the discovery for the current set and apply it.

        When the set differs from the current one, ``on_change(sorted_backends)`` runs
        first (the load balancer builds its selector there), then the set and the
        health table are replaced. Returns whether the set changed. Errors from the
        discovery propagate and leave everything as it was.
        """
        backends, enablement = await self.discovery.discover()
        return self.apply(backends, enablement, on_change)

    def apply(
        self,
        backends: Iterable[Backend],
        enablement: Optional[dict] = None,
        on_change: Optional[Callable[[tuple], None]] = None,
    ) -> bool:
        """Apply a discovered ``(backends, enablement)`` pair (see :meth:`update`)."""
        new_set = frozenset(backends)
        enablement = enablement or {}
        if new_set == self._set:
            health = self._health
            for hash_key, enabled in enablement.items():
                h = health.get(hash_key)
                if h is not None:
                    h.enabled = bool(enabled)
            return False
        old = self._health
        health: dict[int, Health] = {}
        for b in new_set:
            # The same Health object lives on, so a check that is in flight during
            # the swap still records its result.
            h = old.get(b.hash_key) or Health()
            enabled = enablement.get(b.hash_key)
            if enabled is not None:
                h.enabled = bool(enabled)
            health[b.hash_key] = h
        ordered = tuple(sorted(new_set))
        if on_change is not None:
            on_change(ordered)
        # No await between these stores: readers on the loop see old or new, never a mix.
        self._health = health
        self._backends = ordered
        self._set = new_set
        return True

    # --- queries ----------------------------------------------------------------
    def ready(self, backend: Backend) -> bool:
        """Healthy and enabled. A backend not in the set is ready only when no health
        check is configured."""
        h = self._health.get(backend.hash_key)
        if h is None:
            return self.health_check is None
        return h.healthy and h.enabled

    def set_enable(self, backend: Backend, enabled: bool) -> None:
        """Allow or stop traffic to a known backend regardless of its health (no-op if unknown)."""
        h = self._health.get(backend.hash_key)
        if h is not None:
            h.enabled = bool(enabled)

    def get_backend(self) -> tuple[Backend, ...]:
        """The current backends, sorted."""
        return self._backends

    def health_snapshot(self) -> list[BackendHealth]:
        """``(backend, healthy, enabled, last_error)`` for every current backend."""
        health = self._health
        rows = []
        for b in self._backends:
            h = health.get(b.hash_key)
            if h is not None:
                rows.append(BackendHealth(b, h.healthy, h.enabled, h.last_error))
        return rows

    # --- health checks ----------------------------------------------------------
    async def run_health_check(self, parallel: bool = False) -> None:
        """Check every backend once (no-op without a health check).

        ``parallel=True`` runs all checks concurrently; otherwise one after another.
        """
        hc = self.health_check
        if hc is None:
            return
        backends = self._backends
        if parallel:
            await asyncio.gather(*(self._check_and_report(hc, b) for b in backends))
        else:
            for b in backends:
                await self._check_and_report(hc, b)

    async def _check_and_report(self, hc: Any, backend: Backend) -> None:
        error: Optional[BaseException] = None
        try:
            await hc.check(backend)
        except Exception as e:  # a custom check may fail with anything: it is a failed check
            error = e
        h = self._health.get(backend.hash_key)
        if h is None:
            return  # removed from the set while it was being checked
        success = error is None
        h.last_error = error
        if not h.observe(success, hc.health_threshold(success)):
            return
        status_change = getattr(hc, "health_status_change", None)
        if status_change is not None:
            try:
                result = status_change(backend, success)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("health_status_change failed for %r", backend)
        summary_fn = getattr(hc, "backend_summary", None)
        summary = summary_fn(backend) if summary_fn is not None else repr(backend)
        if success:
            log.info("%s becomes healthy", summary)
        else:
            log.warning("%s becomes unhealthy, %s", summary, error)
