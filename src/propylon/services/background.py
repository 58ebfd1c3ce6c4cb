"""Background services: long-running tasks that live as long as the server."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

from ..shutdown import ShutdownWatch

__all__ = ["BackgroundService", "GenBackgroundService", "background_service"]

T = TypeVar("T")


class BackgroundService(ABC):
    """A task started once per process when the server runs (Pingora's ``BackgroundService``).

    ``start`` should loop until ``shutdown`` is set (``await shutdown.wait()``, or
    check ``if shutdown:`` between steps), finish what it is doing and return. The
    server waits for it during graceful shutdown (up to the grace period plus the
    graceful shutdown timeout) and cancels it after that.
    """

    @abstractmethod
    async def start(self, shutdown: ShutdownWatch) -> None:
        """Run until shutdown."""


class GenBackgroundService(Generic[T]):
    """A service wrapping any object with ``async def start(self, shutdown)``.

    By default it runs in every worker process. With ``run_once=True`` it runs in
    one process only: the single process when ``threads`` is 1, otherwise the
    first worker (worker 0, which is restarted with the same role if it dies). Use
    that for work that must not be duplicated, such as health checks writing to
    shared storage.
    """

    def __init__(self, name: str, task: T, *, run_once: bool = False) -> None:
        if not callable(getattr(task, "start", None)):
            raise TypeError(f"background service {name!r}: {task!r} has no start(shutdown) method")
        self.name = name
        self._task = task
        self.run_once = run_once

    def task(self) -> T:
        """The wrapped object (e.g. to share it with a listening app)."""
        return self._task

    async def start(self, shutdown: ShutdownWatch) -> None:
        """Run the wrapped object's ``start(shutdown)``."""
        await self._task.start(shutdown)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<GenBackgroundService {self.name!r} run_once={self.run_once}>"


def background_service(name: str, task: Any, *, run_once: bool = False) -> GenBackgroundService:
    """Wrap ``task`` (anything with an async ``start(shutdown)``) into a service for
    :meth:`Server.add_service`. See :class:`GenBackgroundService` for ``run_once``."""
    return GenBackgroundService(name, task, run_once=run_once)
