"""The running gateway: immutable snapshots and the one reference that is swapped.

A :class:`Snapshot` is everything a request needs — the router, each route's
action and plugin chain, the clusters — built from one validated configuration and
never changed afterwards. :class:`Gateway` holds the current one; a request takes
it once, when it starts, and keeps it to the end (``RequestCtx.snapshot``), so a
reload never changes a request half-way.

Reload (SIGHUP, or :meth:`Gateway.reload`): read and validate the file and build the
routes and plugins in a worker thread (file reads, imports, DNS), assemble the
clusters on the event loop, then assign ``Gateway.current``. Any problem leaves the
running snapshot in place and is logged, one line per problem.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from dataclasses import dataclass, field
from typing import Any, Optional

from ..shutdown import ShutdownWatch
from .clusters import ClusterRuntime, PreparedCluster, assemble_cluster, prepare_cluster
from .config import GatewayConfig, GatewayConfigError, load_config
from .config.load import ConfigProblem
from .config.models import HeaderRules, Route
from .plugins import build_chain, defined_hooks
from .router import CompiledRoute, Router

__all__ = ["Gateway", "Snapshot", "RouteRuntime", "RequestCtx", "CompiledHeaderRules", "prepare", "assemble"]

log = logging.getLogger("propylon.gateway")

PROXY, REDIRECT, RESPOND = "proxy", "redirect", "respond"


class CompiledHeaderRules:
    """Header rules as bytes, applied remove → set → add to a request or response head."""

    __slots__ = ("remove", "set", "add")

    def __init__(self, rules: HeaderRules) -> None:
        self.remove = tuple(n.encode() for n in rules.remove)
        self.set = tuple((k.encode(), v.encode()) for k, v in rules.set.items())
        self.add = tuple((k.encode(), v.encode()) for k, v in rules.add.items())

    def __bool__(self) -> bool:
        return bool(self.remove or self.set or self.add)

    def apply(self, head: Any) -> None:
        for name in self.remove:
            head.remove_header(name)
        for name, value in self.set:
            head.insert_header(name, value)
        for name, value in self.add:
            head.append_header(name, value)


@dataclass(frozen=True, eq=False)
class RouteRuntime:
    """A route ready to serve: its action, rewrite, header rules and plugin hooks."""

    compiled: CompiledRoute
    kind: str
    cluster: Optional[str]
    strip_prefix: Optional[str]
    rewrite_regex: Optional[re.Pattern]
    rewrite_to: str
    request_rules: Optional[CompiledHeaderRules]
    response_rules: Optional[CompiledHeaderRules]
    request_hooks: tuple
    upstream_request_hooks: tuple
    response_hooks: tuple
    logging_hooks: tuple

    @property
    def name(self) -> str:
        return self.compiled.name

    @property
    def conf(self) -> Route:
        return self.compiled.conf

    def rewrite(self, path: str) -> Optional[str]:
        """The path to send upstream, or None when it stays as it is."""
        if self.strip_prefix is not None:
            if path.startswith(self.strip_prefix):
                rest = path[len(self.strip_prefix):]
                return rest if rest.startswith("/") else "/" + rest
            return None
        if self.rewrite_regex is not None:
            return self.rewrite_regex.sub(self.rewrite_to, path, count=1)
        return None


class RequestCtx:
    """Per-request state: the snapshot it started with, its route, and plugin values."""

    __slots__ = ("snapshot", "route", "captures", "backend", "cluster", "tried", "vars", "guards",
                 "body_limit")

    def __init__(self, snapshot: "Snapshot") -> None:
        self.snapshot = snapshot
        self.route: Optional[RouteRuntime] = None
        self.captures: dict = {}
        self.backend: Any = None
        self.cluster: Optional[ClusterRuntime] = None
        self.tried: list = []
        self.vars: dict = {}
        self.guards: list = []
        self.body_limit: Any = None


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One configuration, ready to serve; never changed once built."""

    version: int
    conf: GatewayConfig
    source: Optional[str]
    router: Router
    routes: tuple            # RouteRuntime by route index
    clusters: dict           # name -> ClusterRuntime


@dataclass
class Prepared:
    """A validated configuration with its routes and plugins built (see :func:`prepare`)."""

    conf: GatewayConfig
    source: Optional[str]
    router: Router
    routes: tuple
    clusters: list = field(default_factory=list)


def _hooks(chain: list, name: str) -> tuple:
    return tuple(getattr(p, name) for p in chain if name in defined_hooks(p))


def _route_runtime(compiled: CompiledRoute, chain: list) -> RouteRuntime:
    r = compiled.conf
    kind = PROXY if r.proxy is not None else REDIRECT if r.redirect is not None else RESPOND
    rw = r.rewrite
    req_rules = CompiledHeaderRules(r.headers.request)
    resp_rules = CompiledHeaderRules(r.headers.response)
    return RouteRuntime(
        compiled, kind, r.proxy.cluster if r.proxy else None,
        rw.strip_prefix if rw else None,
        re.compile(rw.regex.pattern) if rw and rw.regex else None,
        rw.regex.replacement if rw and rw.regex else "",
        req_rules or None, resp_rules or None,
        _hooks(chain, "request_filter"), _hooks(chain, "upstream_request_filter"),
        _hooks(chain, "response_filter"), _hooks(chain, "logging"))


def prepare(conf: GatewayConfig, source: Optional[str], reimport: Optional[set] = None) -> Prepared:
    """Build the router, the routes with their plugins and resolve the clusters' backends.

    May block (key files, imports, DNS): call it off the event loop when serving.
    Raises :class:`GatewayConfigError` with every problem, named by path.
    """
    base_dir = os.path.dirname(os.path.abspath(source)) if source else None
    reimport = set() if reimport is None else reimport
    router = Router(conf.routes, [listener.name for listener in conf.listeners])
    problems: list[ConfigProblem] = []
    routes = []
    for compiled in router.routes:
        chain, found = build_chain(compiled.index, compiled.conf, compiled.name, base_dir, reimport)
        problems += found
        routes.append(_route_runtime(compiled, chain))
    clusters = []
    for name, cluster in conf.clusters.items():
        prepared, found = prepare_cluster(name, cluster)
        problems += found
        clusters.append(prepared)
    if problems:
        raise GatewayConfigError(problems)
    return Prepared(conf, source, router, tuple(routes), clusters)


def assemble(prepared: Prepared, version: int, previous: Optional[Snapshot]) -> Snapshot:
    """The snapshot, with clusters taken over from ``previous`` where possible (no I/O)."""
    old = previous.clusters if previous is not None else {}
    clusters = {p.name: assemble_cluster(p, old.get(p.name)) for p in prepared.clusters}
    return Snapshot(version, prepared.conf, prepared.source, prepared.router, prepared.routes, clusters)


#: Sections opened once at start; a reload that changes them is refused.
RESTART_ONLY = ("listeners", "server", "metrics")


def restart_only_changes(old: GatewayConfig, new: GatewayConfig) -> list[ConfigProblem]:
    """Problems for sections a reload cannot apply (sockets are opened at start)."""
    return [ConfigProblem(key, "changed, but only a restart applies this section "
                               "(changing it on reload is not available yet)")
            for key in RESTART_ONLY if getattr(old, key) != getattr(new, key)]


def python_modules(conf: GatewayConfig) -> set:
    """The modules of the configuration's Python plugins (imported again on reload)."""
    return {py.plugin.partition(":")[0] for r in conf.routes for py in r.plugins.python}


class Gateway:
    """The current snapshot, reloads, and the clusters' background loops (per process).

    Run :meth:`start` as a background service: it starts each cluster's discovery and
    health-check loop, reloads on SIGHUP, and stops the loops at shutdown.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        self.path = snapshot.source
        self._loops: dict[int, tuple[ClusterRuntime, ShutdownWatch, asyncio.Task]] = {}
        self._reloading: Optional[asyncio.Task] = None
        self._again = False
        self.last_problems: list[ConfigProblem] = []

    @classmethod
    def from_file(cls, path: str) -> "Gateway":
        """Load, validate and build from ``path``. Raises :class:`GatewayConfigError`."""
        conf = load_config(path)
        return cls(assemble(prepare(conf, path), 1, None))

    # --- reload ---------------------------------------------------------------------------
    async def reload(self, path: Optional[str] = None) -> list[ConfigProblem]:
        """Apply the file ``path`` (default: the current one); returns the problems that
        refused it (empty when applied). The running snapshot serves until the swap."""
        path = path or self.path
        current = self.current

        def work() -> Prepared:
            conf = load_config(path)  # type: ignore[arg-type]
            problems = restart_only_changes(current.conf, conf)
            if problems:
                raise GatewayConfigError(problems)
            return prepare(conf, path, python_modules(conf))

        try:
            prepared = await asyncio.to_thread(work)
        except GatewayConfigError as e:
            self.last_problems = e.problems
            log.error("reload of %s refused; still serving version %d:\n%s", path, current.version,
                      "\n".join(f"  {p}" for p in e.problems))
            return e.problems
        except Exception as e:  # a defect, not a configuration problem: say so, keep serving
            log.exception("reload of %s failed; still serving version %d", path, current.version)
            self.last_problems = [ConfigProblem("", f"reload failed: {type(e).__name__}: {e}")]
            return self.last_problems
        if self.current is not current:  # another reload won meanwhile: build on it
            current = self.current
        snapshot = assemble(prepared, current.version + 1, current)
        self.current = snapshot
        self.path = path
        self.last_problems = []
        self._sync_loops()
        log.warning("configuration version %d applied from %s", snapshot.version, path)
        return []

    def _on_sighup(self) -> None:
        # One reload at a time; a signal during one asks for another right after it,
        # so the file's latest content is always what ends up applied.
        if self._reloading is not None and not self._reloading.done():
            self._again = True
            return
        self._reloading = asyncio.ensure_future(self._reload_until_settled())

    async def _reload_until_settled(self) -> None:
        while True:
            self._again = False
            await self.reload()
            if not self._again:
                return

    # --- background loops ------------------------------------------------------------------
    def _sync_loops(self) -> None:
        live = {id(c): c for c in self.current.clusters.values()}
        for key in list(self._loops):
            if key not in live:
                _, stop, _ = self._loops.pop(key)
                stop.trigger()
        for key, cluster in live.items():
            if key not in self._loops:
                stop = ShutdownWatch()
                task = asyncio.ensure_future(self._run_cluster(cluster, stop))
                self._loops[key] = (cluster, stop, task)

    @staticmethod
    async def _run_cluster(cluster: ClusterRuntime, stop: ShutdownWatch) -> None:
        try:
            await cluster.lb.start(stop)
        except Exception:  # a loop that dies must not take the gateway with it
            log.exception("cluster %s: discovery/health loop failed", cluster.name)

    async def start(self, shutdown: ShutdownWatch) -> None:
        """The background service: cluster loops and SIGHUP, until shutdown."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (ValueError, RuntimeError, NotImplementedError):
            log.warning("cannot handle SIGHUP here; reload through Gateway.reload() only")
        self._sync_loops()
        log.info("gateway serving configuration version %d from %s; SIGHUP reloads it",
                 self.current.version, self.path)
        try:
            await shutdown.wait()
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
            for _, stop, _ in self._loops.values():
                stop.trigger()
            tasks = [t for _, _, t in self._loops.values()]
            self._loops.clear()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
