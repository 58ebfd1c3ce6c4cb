"""The running gateway: immutable snapshots and the one reference that is swapped.

A :class:`Snapshot` is everything a request needs — the router, each route's
action and plugin chain, the clusters — built from one validated configuration and
never changed afterwards. :class:`Gateway` holds the current one; a request takes
it once, when it starts, and keeps it to the end (``RequestCtx.snapshot``), so a
reload never changes a request half-way.

Reload (SIGHUP, a change of the watched file, the admin API, or :meth:`Gateway.reload`):
read and validate the file and build the routes and plugins in a worker thread (file
reads, imports, DNS), bind the sockets of added listeners, assemble the clusters on the
event loop, then assign ``Gateway.current`` and open and close listeners. Any problem
leaves the running snapshot in place and is logged, one line per problem. Versions,
history and the last good file are kept by :class:`~propylon.gateway.state.ConfigState`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import tempfile
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ..shutdown import ShutdownWatch
from .clusters import ClusterRuntime, assemble_cluster, prepare_cluster
from .config import GatewayConfig, GatewayConfigError, load_config
from .config.load import ConfigProblem
from .config.models import HeaderRules, Listener, Route
from .plugins import build_chain, defined_hooks
from .plugins.caching import RouteCache
from .router import NO_CAPTURES, CompiledRoute, Router
from .state import ConfigState, digest_of

__all__ = ["Gateway", "Snapshot", "RouteRuntime", "RequestCtx", "CompiledHeaderRules", "prepare", "assemble"]

#: Proxy errors kept for the dashboard.
RECENT_ERRORS = 50

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
    request_body_hooks: tuple
    response_hooks: tuple
    logging_hooks: tuple
    #: the ``cache`` plugin's RouteCache, or None (the proxy's cache hooks use it)
    cache: Any = None
    #: Whether anything changes the upstream request (a rewrite, header rules or a
    #: plugin): most routes pass it on as it came, without a look at its path.
    edits_upstream_request: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "edits_upstream_request", bool(
            self.strip_prefix is not None or self.rewrite_regex is not None
            or self.request_rules is not None or self.upstream_request_hooks))

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
        self.captures: Mapping[str, Any] = NO_CAPTURES
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
        _hooks(chain, "request_body_filter"), _hooks(chain, "response_filter"), _hooks(chain, "logging"),
        next((p for p in chain if isinstance(p, RouteCache)), None))


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
RESTART_ONLY = ("server", "metrics", "access_log", "admin", "config_store")


def restart_only_changes(old: GatewayConfig, new: GatewayConfig) -> list[ConfigProblem]:
    """Problems for sections a reload cannot apply (sockets are opened at start)."""
    return [ConfigProblem(key, "changed, but only a restart applies this section "
                               "(changing it on reload is not available yet)")
            for key in RESTART_ONLY if getattr(old, key) != getattr(new, key)]


def python_modules(conf: GatewayConfig) -> set:
    """The modules of the configuration's Python plugins (imported again on reload)."""
    return {py.plugin.partition(":")[0] for r in conf.routes for py in r.plugins.python}


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise GatewayConfigError([ConfigProblem("", f"{path}: cannot read: {e.strerror or e}")]) from None


def load_text(text: str, path: str) -> GatewayConfig:
    """Validate ``text`` as if it were the content of ``path`` (its includes and relative
    file names resolve beside ``path``). Raises :class:`GatewayConfigError`."""
    fd, tmp = tempfile.mkstemp(prefix=".propylon-candidate-", suffix=".yaml",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            return load_config(tmp)
        except GatewayConfigError as e:
            raise GatewayConfigError([ConfigProblem(p.path, p.message.replace(tmp, path))
                                      for p in e.problems]) from None
    finally:
        os.unlink(tmp)


class Candidate:
    """A file's text, validated and built off the loop, ready to be applied."""

    def __init__(self, text: str, prepared: Prepared) -> None:
        self.text = text
        self.prepared = prepared


class Gateway:
    """The current snapshot, reloads, served listeners and the clusters' loops (per process).

    Run :meth:`start` as a background service: it starts each cluster's discovery and
    health-check loop, reloads on SIGHUP and when the file changes, and stops the loops
    at shutdown. ``server_conf`` and ``listeners`` are set by ``add_gateway_services``
    (the endpoints opened at start), so that a reload can open and close listeners.
    """

    #: How often the file is looked at, and how long it must stay unchanged before a reload.
    WATCH_INTERVAL = 0.25
    WATCH_SETTLE = 0.2

    def __init__(self, snapshot: Snapshot, text: str = "", state: Optional[ConfigState] = None) -> None:
        self.current = snapshot
        self.path = snapshot.source
        self.text = text
        self.state = state
        self.server_conf: Any = None
        #: listener name -> (its configuration, the Service serving it in this process, its proxy)
        self.listeners: dict[str, tuple[Listener, Any, Any]] = {}
        self._opened: list = []  # Services opened by reloads, drained at shutdown
        self._shutdown: Optional[ShutdownWatch] = None
        self._loops: dict[int, tuple[ClusterRuntime, ShutdownWatch, asyncio.Task]] = {}
        self._reloading: Optional[asyncio.Task] = None
        self._again = False
        self._lock = asyncio.Lock()
        self._reloads = 0
        self.last_problems: list[ConfigProblem] = []
        #: the last proxy errors of this process with their cause (the dashboard's
        #: "recent proxy errors"; its figures come from the built-in metrics)
        self.recent_errors: deque = deque(maxlen=RECENT_ERRORS)
        self.store: Any = None  # the RedisConfigStore of this process, with config_store
        #: the built-in observability (``metrics``/``access_log``), made at start, or None
        self.observer: Any = None

    @classmethod
    def from_file(cls, path: str, keep_state: bool = True) -> "Gateway":
        """Load, validate and build from ``path``; if the file is refused, from the last
        good copy kept in the state directory (loudly). Raises :class:`GatewayConfigError`
        when neither can be used. ``keep_state=False`` (``run -t``) checks the file only
        and writes nothing."""
        if not keep_state:
            return cls(assemble(prepare(load_config(path), path), 1, None), read_text(path))
        state = ConfigState(path)
        try:
            text = read_text(path)
            conf = load_config(path)
            prepared = prepare(conf, path)
        except GatewayConfigError as e:
            good = state.last_good()
            if good is None:
                raise
            try:
                conf = load_text(good, path)
                prepared = prepare(conf, path)
            except GatewayConfigError:
                raise e from None
            log.error("%s is refused; STARTING FROM THE LAST GOOD COPY %s instead. Fix the file "
                      "(the problems follow) and reload:\n%s", path, state.last_good_path,
                      "\n".join(f"  {p}" for p in e.problems))
            text = good
        if conf.admin is not None and conf.admin.history != state.keep:
            state.keep = conf.admin.history
        version = state.record(text, "start")
        state.save_last_good(text)
        return cls(assemble(prepared, version, None), text, state)

    # --- reload ---------------------------------------------------------------------------
    def check(self, text: str) -> Candidate:
        """Validate and build ``text`` as the new content of the file (blocking: call it in a
        thread). Raises :class:`GatewayConfigError` with every problem."""
        conf = load_text(text, self.path)  # type: ignore[arg-type]
        from .serve import listener_problems  # serve builds on this module

        problems = restart_only_changes(self.current.conf, conf) + listener_problems(conf)
        if problems:
            raise GatewayConfigError(problems)
        return Candidate(text, prepare(conf, self.path, python_modules(conf)))

    async def reload(self, path: Optional[str] = None, who: str = "reload",
                     text: Optional[str] = None, only_if_changed: bool = False) -> list[ConfigProblem]:
        """Apply ``text`` (default: the content of the file ``path``, default the current
        one); returns the problems that refused it (empty when applied). The running
        snapshot serves until the swap. Reloads run one at a time."""
        async with self._lock:
            return await self._reload(path or self.path, who, text, only_if_changed)

    async def _reload(self, path: str, who: str, text: Optional[str],
                      only_if_changed: bool) -> list[ConfigProblem]:
        current = self.current
        self.path = path

        def work() -> Optional[Candidate]:
            body = read_text(path) if text is None else text
            if only_if_changed and body == self.text:
                return None
            return self.check(body)

        try:
            candidate = await asyncio.to_thread(work)
        except GatewayConfigError as e:
            self.last_problems = e.problems
            log.error("reload of %s refused; still serving version %d:\n%s", path, current.version,
                      "\n".join(f"  {p}" for p in e.problems))
            return e.problems
        except Exception as e:  # a defect, not a configuration problem: say so, keep serving
            log.exception("reload of %s failed; still serving version %d", path, current.version)
            self.last_problems = [ConfigProblem("", f"reload failed: {type(e).__name__}: {e}")]
            return self.last_problems
        if candidate is None:
            return []
        try:
            opened = await self._open_listeners(current.conf, candidate.prepared.conf)
        except GatewayConfigError as e:
            self.last_problems = e.problems
            log.error("reload of %s refused; still serving version %d:\n%s", path, current.version,
                      "\n".join(f"  {p}" for p in e.problems))
            return e.problems
        version = await asyncio.to_thread(self._record, candidate.text, who)
        snapshot = assemble(candidate.prepared, version, current)
        self.current = snapshot
        self.text = candidate.text
        self.last_problems = []
        await self._swap_listeners(current, snapshot.conf, opened)
        self._sync_loops()
        if self.store is not None:
            self.store.applied(candidate.text, who)
        self._reloads += 1
        log.warning("configuration version %d applied from %s (%s; reload %d of this process)",
                    snapshot.version, path, who, self._reloads)
        return []

    def _record(self, text: str, who: str) -> int:
        if self.state is None:
            return self.current.version + 1
        version = self.state.record(text, who)
        self.state.save_last_good(text)
        self.state.report_worker(version, digest_of(text))
        return version

    # --- listeners ------------------------------------------------------------------------
    def _listener_changes(self, old: GatewayConfig, new: GatewayConfig) -> tuple[list, list]:
        before = {listener.name: listener for listener in old.listeners}
        after = {listener.name: listener for listener in new.listeners}
        gone = [name for name, conf in before.items() if after.get(name) != conf]
        added = [conf for name, conf in after.items() if before.get(name) != conf]
        return gone, added

    async def _open_listeners(self, old: GatewayConfig, new: GatewayConfig) -> list:
        """Bind the sockets of listeners the new file adds or changes (nothing is served
        from them yet). A listener whose address stays is closed first, then bound again."""
        if self.server_conf is None:  # not serving (tests of the snapshot only)
            return []
        from .serve import listener_service

        gone, added = self._listener_changes(old, new)
        same_address = {conf.address for conf in added} & {self.listeners[n][0].address for n in gone
                                                            if n in self.listeners}
        for name in gone:
            if name in self.listeners and self.listeners[name][0].address in same_address:
                self._close_listener(name)
        opened, problems = [], []
        for conf in added:
            service, proxy = listener_service(self.server_conf, self, conf)
            endpoint = service.listeners[0]
            try:
                sock = endpoint.bind(reuseport=self.server_conf.threads > 1)
            except OSError as e:
                i = next(i for i, listener in enumerate(new.listeners) if listener.name == conf.name)
                problems.append(ConfigProblem(f"listeners[{i}].address",
                                              f"cannot listen on {conf.address}: {e.strerror or e}"))
                continue
            opened.append((conf, service, proxy, endpoint, sock))
        if problems:
            for *_, sock in opened:
                sock.close()
            raise GatewayConfigError(problems)
        return opened

    async def _swap_listeners(self, old: Snapshot, new: GatewayConfig, opened: list) -> None:
        if self.server_conf is None:
            return
        gone, _ = self._listener_changes(old.conf, new)
        for name in gone:
            self._close_listener(name, old)
        for conf, service, proxy, endpoint, sock in opened:
            await service.start_serving([(endpoint, sock)], self._shutdown or ShutdownWatch())
            self.listeners[conf.name] = (conf, service, proxy)
            self._opened.append(service)
            log.warning("listener %s opened on %s", conf.name, conf.address)

    def _close_listener(self, name: str, last: Optional[Snapshot] = None) -> None:
        entry = self.listeners.pop(name, None)
        if entry is not None:
            # Connections already accepted go on until they finish, on the last
            # snapshot that had their listener.
            entry[2].retired = last or self.current
            entry[1].stop_accepting()
            log.warning("listener %s on %s closed", name, entry[0].address)

    # --- SIGHUP and the file ---------------------------------------------------------------
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
            await self.reload(who="SIGHUP")
            if not self._again:
                return

    @staticmethod
    def _stat(path: str) -> Optional[tuple]:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    async def _watch(self, shutdown: ShutdownWatch) -> None:
        """Reload when the file changes (polled; a change must settle before it is read)."""
        seen = self._stat(self.path)  # type: ignore[arg-type]
        while not shutdown.triggered:
            await asyncio.sleep(self.WATCH_INTERVAL)
            now = self._stat(self.path)  # type: ignore[arg-type]
            if now == seen or now is None:
                continue
            await asyncio.sleep(self.WATCH_SETTLE)
            if self._stat(self.path) != now:  # still being written
                continue
            seen = now
            try:
                await self.reload(who="file change", only_if_changed=True)
            except Exception:  # the watcher must outlive any one reload
                log.exception("reload after a change of %s failed", self.path)

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
        """The background service: cluster loops, SIGHUP and the file watch, until shutdown."""
        loop = asyncio.get_running_loop()
        self._shutdown = shutdown
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (ValueError, RuntimeError, NotImplementedError):
            log.warning("cannot handle SIGHUP here; reload through Gateway.reload() only")
        self._sync_loops()
        if self.state is not None:
            self.state.report_worker(self.current.version, digest_of(self.text))
        # A worker restarted by the master starts from what the master loaded: catch up.
        await self.reload(who="worker start", only_if_changed=True)
        watcher = loop.create_task(self._watch(shutdown)) if self.path else None
        store_task = None
        if self.current.conf.config_store is not None:
            from .store import RedisConfigStore

            self.store = RedisConfigStore(self, self.current.conf.config_store)
            store_task = loop.create_task(self.store.run(shutdown))
        log.info("gateway serving configuration version %d from %s; SIGHUP reloads it",
                 self.current.version, self.path)
        try:
            await shutdown.wait()
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
            for task in (watcher, store_task):
                if task is not None:
                    task.cancel()
            for service in self._opened:
                service.stop_accepting()
            for _, stop, _ in self._loops.values():
                stop.trigger()
            tasks = [t for _, _, t in self._loops.values()]
            tasks += [loop.create_task(s.wait_drained()) for s in self._opened]
            self._loops.clear()
            if tasks:
                await asyncio.wait(tasks, timeout=self.server_conf.grace_period if self.server_conf else 5)
