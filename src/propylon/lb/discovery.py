"""Service discovery: where the set of backends comes from.

A discovery is any object with ``async discover() -> (set[Backend], dict[int, bool])``:
the current backends and, optionally, an enablement override per ``hash_key``
(backends missing from the dict keep their enablement). Provided here:

* :class:`Static` – a fixed set (``Static.from_iter(["127.0.0.1:80", ...])``);
* :class:`InMemoryDiscovery` (alias :class:`PushDiscovery`) – a set the application
  replaces at run time (an admin API's hot swap);
* :class:`FileDiscovery` – a text file, re-read when it changes;
* :class:`DnsDiscovery` – A/AAAA records of a name, re-resolved on every update.

File and DNS discovery keep serving the last good set when the source turns bad,
and log one warning per distinct problem.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Iterable, Optional, Protocol, Union, runtime_checkable

from ..errors import Error, ErrorType
from .backend import Backend

__all__ = [
    "ServiceDiscovery",
    "Static",
    "InMemoryDiscovery",
    "PushDiscovery",
    "FileDiscovery",
    "DnsDiscovery",
    "BackendLike",
]

log = logging.getLogger("propylon.lb")

BackendLike = Union[Backend, str, tuple]
Discovered = tuple[set, dict]


@runtime_checkable
class ServiceDiscovery(Protocol):
    """The discovery contract (see the module docstring)."""

    async def discover(self) -> Discovered:
        """Return ``(backends, enablement)``."""
        ...


def _resolve_blocking(item: BackendLike) -> list[Backend]:
    """Backends for ``item``; a ``name:port`` string is resolved with the system
    resolver (blocking: for construction time only, never inside the event loop)."""
    try:
        return [Backend.coerce(item)]
    except ValueError:
        if not isinstance(item, str):
            raise
    host, sep, port = item.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"invalid backend address {item!r}")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ValueError(f"invalid backend address {item!r}: {e}") from None
    return sorted({_from_sockaddr(info[4], 1) for info in infos})


def _from_sockaddr(sockaddr: tuple, weight: int) -> Backend:
    host, port = sockaddr[0], sockaddr[1]
    host = host.split("%", 1)[0]  # drop an IPv6 scope id
    return Backend(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", weight)


class Static:
    """A fixed set of backends, with no enablement overrides."""

    def __init__(self, backends: Iterable[BackendLike] = ()) -> None:
        self._backends = frozenset(Backend.coerce(b) for b in backends)

    @classmethod
    def from_iter(cls, addrs: Iterable[BackendLike]) -> "Static":
        """Build from addresses; IP literals are parsed, names like ``localhost:80``
        are resolved once, here (blocking), each address becoming a backend of weight 1.
        Raises ``ValueError`` naming a bad address."""
        backends: set[Backend] = set()
        for item in addrs:
            backends.update(_resolve_blocking(item))
        return cls(backends)

    def get(self) -> frozenset:
        """The current set."""
        return self._backends

    async def discover(self) -> Discovered:
        """The fixed set and no enablement overrides."""
        return set(self._backends), {}


class InMemoryDiscovery:
    """A backend set the application replaces at run time (push model).

    :meth:`set`, :meth:`add` and :meth:`remove` validate every address first and
    raise ``ValueError`` naming the bad one, leaving the set untouched; otherwise the
    new set replaces the old in one step. :meth:`set_enabled` marks a backend
    enabled/disabled (drain it without removing it). The load balancer sees changes
    at its next update (``update_frequency``), or at once after ``await lb.update()``.
    """

    def __init__(self, backends: Iterable[BackendLike] = ()) -> None:
        self._backends: frozenset = frozenset(self._validate(backends))
        self._enabled: dict[int, bool] = {}
        self.version = 0  # bumped on every change, for observers

    @staticmethod
    def _validate(items: Iterable[BackendLike]) -> list[Backend]:
        if isinstance(items, (str, Backend)):
            items = [items]
        return [Backend.coerce(item) for item in items]

    def get(self) -> frozenset:
        """The current set."""
        return self._backends

    def set(self, backends: Iterable[BackendLike]) -> None:
        """Replace the whole set."""
        self._backends = frozenset(self._validate(backends))
        self.version += 1

    def add(self, *backends: BackendLike) -> None:
        """Add backends to the set."""
        self._backends = self._backends.union(self._validate(backends))
        self.version += 1

    def remove(self, *backends: BackendLike) -> None:
        """Remove backends (matched by address and weight); unknown ones are ignored."""
        self._backends = self._backends.difference(self._validate(backends))
        self.version += 1

    def set_enabled(self, backend: BackendLike, enabled: bool) -> None:
        """Override whether ``backend`` may take traffic (independent of health)."""
        self._enabled = {**self._enabled, Backend.coerce(backend).hash_key: bool(enabled)}
        self.version += 1

    async def discover(self) -> Discovered:
        """The current set and the enablement overrides."""
        return set(self._backends), dict(self._enabled)


PushDiscovery = InMemoryDiscovery


class _LastGood:
    """Shared policy of file and DNS discovery: remember the last good set and warn
    once per distinct problem."""

    def __init__(self) -> None:
        self._good: Optional[frozenset] = None
        self._warned: Optional[str] = None

    def good(self, backends: Iterable[Backend]) -> Discovered:
        """Remember ``backends`` as the last good set and return it."""
        self._good = frozenset(backends)
        self._warned = None
        return set(self._good), {}

    def bad(self, message: str, etype: ErrorType) -> Discovered:
        """Warn (once per distinct ``message``) and return the last good set, or
        raise :class:`Error` of ``etype`` if there is none."""
        if message != self._warned:
            self._warned = message
            if self._good is None:
                log.warning("%s (no backend set loaded yet)", message)
            else:
                log.warning("%s; keeping the last good set of %d backends", message, len(self._good))
        if self._good is None:
            raise Error.explain(etype, message)
        return set(self._good), {}


class FileDiscovery(_LastGood):
    """Backends listed in a text file, re-read whenever it changes.

    One backend per line: ``host:port`` with an optional weight after a space
    (``127.0.0.1:18080 3``), ``[::1]:80`` or ``unix:/path``; ``#`` starts a comment,
    blank lines are ignored. Host names are resolved, without blocking the loop,
    each time the file is read.
    The file is re-read only when its inode, size or mtime changed. A missing,
    unreadable or invalid file keeps the last good set and logs one warning naming
    the file (and the line); if no good set was ever loaded, ``discover`` raises
    :class:`~propylon.errors.Error`.
    """

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self._signature: Optional[tuple] = None

    def _read_if_changed(self) -> Optional[str]:
        # Runs in a worker thread: stat + read are file I/O.
        st = os.stat(self.path)
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if signature == self._signature and self._good is not None:
            return None
        with open(self.path, encoding="utf-8") as f:
            text = f.read()
        self._signature = signature
        return text

    async def discover(self) -> Discovered:
        """The file's backends (re-read only if it changed), or the last good set."""
        try:
            text = await asyncio.to_thread(self._read_if_changed)
        except (OSError, UnicodeDecodeError) as e:
            self._signature = None
            return self.bad(f"cannot read backend file {self.path}: {e}", ErrorType.FILE_READ_ERROR)
        if text is None:
            return set(self._good or ()), {}
        try:
            backends = await self._parse(text)
        except ValueError as e:
            # Re-read next time: the file may be fixed without its signature changing much.
            self._signature = None
            return self.bad(str(e), ErrorType.FILE_READ_ERROR)
        return self.good(backends)

    async def _parse(self, text: str) -> list[Backend]:
        loop = asyncio.get_running_loop()
        backends: list[Backend] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"{self.path} line {lineno}"
            fields = line.split()
            if len(fields) > 2:
                raise ValueError(f"invalid backend file {where}: {raw.strip()!r}")
            weight = 1
            if len(fields) == 2:
                if not fields[1].isdigit() or int(fields[1]) < 1:
                    raise ValueError(f"invalid backend file {where}: bad weight {fields[1]!r}")
                weight = int(fields[1])
            addr = fields[0]
            try:
                backends.append(Backend(addr, weight))
                continue
            except ValueError as e:
                host, sep, port = addr.rpartition(":")
                if addr.startswith(("unix:", "[")) or not sep or not port.isdigit() or not host \
                        or _is_ip_like(host):
                    raise ValueError(f"invalid backend file {where}: {e}") from None
            try:
                infos = await loop.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except (socket.gaierror, OSError) as e:
                raise ValueError(f"invalid backend file {where}: cannot resolve {host!r}: {e}") from None
            backends.extend(_from_sockaddr(info[4], weight) for info in infos)
        return backends


def _is_ip_like(host: str) -> bool:
    return all(c.isdigit() or c == "." for c in host) or ":" in host


class DnsDiscovery(_LastGood):
    """The A/AAAA records of ``name`` as backends on ``port`` with ``weight``.

    Resolved with the loop's non-blocking ``getaddrinfo`` on every update;
    ``family`` narrows to ``socket.AF_INET`` or ``AF_INET6`` (default: both). A
    failed lookup keeps the last good set (one warning per distinct error).
    """

    def __init__(self, name: str, port: int, weight: int = 1, *, family: int = socket.AF_UNSPEC) -> None:
        super().__init__()
        if not 0 < port < 65536:
            raise ValueError(f"invalid port {port!r} for DNS discovery of {name!r}")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise ValueError(f"invalid weight {weight!r} for DNS discovery of {name!r}")
        self.name = name
        self.port = port
        self.weight = weight
        self.family = family

    async def discover(self) -> Discovered:
        """The backends the name resolves to now, or the last good set."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.name, self.port, family=self.family, type=socket.SOCK_STREAM)
        except (socket.gaierror, OSError) as e:
            return self.bad(f"cannot resolve {self.name!r}: {e}", ErrorType.CONNECT_NO_ROUTE)
        backends = {_from_sockaddr(info[4], self.weight) for info in infos}
        if not backends:
            return self.bad(f"{self.name!r} resolved to no address", ErrorType.CONNECT_NO_ROUTE)
        return self.good(backends)
