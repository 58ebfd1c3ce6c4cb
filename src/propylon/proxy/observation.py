"""``Observation``: what the request engine tells an observer about one request.

An observer (``HttpProxyEngine(observer=...)``, such as
:class:`propylon.metrics.Observability`) makes one per request with
``observer.request_start(session)``; the engine keeps it as
``session.observation`` and calls the methods below as the request goes on. The
observer's record (:class:`propylon.metrics.record.RequestRecord`) derives from
this class, so a compiled engine reaches it with C calls rather than a Python
method lookup per call. Every method here does nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Observation"]


class Observation:
    """The engine's calls on one request's observation, in the order they come."""

    __slots__ = ()

    def upstream_attempt(self, peer: Any) -> None:
        """An upstream attempt starts: ``peer`` was chosen (before connecting)."""

    def upstream_connected(self, reused: bool) -> None:
        """The attempt has its connection (``reused``: from the pool)."""

    def upstream_response(self, resp: Any) -> None:
        """The upstream's response head arrived (before any response hook)."""

    def upstream_done(self, error: Any) -> None:
        """An attempt the engine is about to retry ended with ``error``."""

    def hook_ran(self, name: str, start: float, end: float) -> None:
        """A traced request's hook ``name`` ran from ``start`` to ``end``
        (``perf_counter`` seconds)."""

    def finish(self, ctx: Any, error: Any) -> None:
        """The request is over (after the ``logging`` hook); ``error`` ended it, or None."""
