"""One benchmark run: shared servers, per-scenario fronts, warm-up and measurement.

A :class:`Workbench` owns the run's temporary directory and every process started in
it. The backend nginx (and the TLS certificate) are made on first use and kept for the
whole run. The scenarios of one group (e.g. backend, nginx, propylon) are measured
together: their fronts are started, then loaded in turns, one at a time, for
``repeat`` rounds, and stopped. Taking turns keeps a machine whose speed drifts over
a minute from favouring whichever front happened to run first; an idle front costs
nothing, so only the front being loaded competes for the cores.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from . import h2load as h2load_mod
from . import wrk as wrk_mod
from .h2probe import h2_get_status
from .nginx import BACKEND_BODY, CACHE_PATH, NginxRole, NginxServer, start_nginx
from .procs import (
    BenchProcess, ProcessSet, StartError, free_port, group_cpu_seconds, lost_port_race,
    wait_http_ok,
)
from .results import LoadResult, ParseError
from .tlscert import make_self_signed
from .varnish import start_varnish

if TYPE_CHECKING:
    from .scenarios import Scenario

log = logging.getLogger(__name__)

__all__ = ["BenchParams", "NotAvailable", "ScenarioResult", "Target", "Workbench"]

_FORWARDER = Path(__file__).with_name("forwarder.py")
_PROPYLON_NAMES = "Server, ProxyHttp, HttpPeer, http_proxy_service"

Status = Literal["ok", "unavailable", "failed"]


class NotAvailable(Exception):
    """The target started but lacks what the scenario measures (e.g. HTTP/2)."""


@dataclass(frozen=True)
class BenchParams:
    """Load and server settings shared by every scenario of a run.

    Defaults: 64 connections, one load-generator thread, one server worker, 10 s
    measured after a 2 s warm-up, 10 concurrent streams per HTTP/2 connection, one
    measured run per scenario (``repeat`` > 1 keeps the median by req/s).
    """

    connections: int = 64
    loadgen_threads: int = 1
    workers: int = 1
    duration: float = 10.0
    warmup: float = 2.0
    h2_streams: int = 10
    repeat: int = 1


@dataclass
class Target:
    """What a scenario's start-up hands back: the URL to load, the process to watch
    and the header lines every request carries."""

    url: str
    proc: BenchProcess
    headers: tuple[str, ...] = ()

    @property
    def port(self) -> int:
        """The loopback port of ``url``."""
        return int(self.url.rsplit(":", 1)[1].strip("/"))


@dataclass
class ScenarioResult:
    """The outcome of one scenario: figures when ``status`` is ``ok``, else ``note`` says why."""

    name: str
    group: str
    role: str
    status: Status
    note: str = ""
    load: LoadResult | None = None
    cpu_cores: float | None = None
    url: str = ""
    all_rps: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``--json`` output."""
        return {
            "name": self.name, "group": self.group, "role": self.role, "status": self.status,
            "note": self.note, "url": self.url, "cpu_cores": self.cpu_cores,
            "all_requests_per_sec": self.all_rps,
            "load": self.load.to_json() if self.load else None,
        }


@dataclass
class Workbench:
    """Runs scenarios inside ``root`` (a temporary directory the caller removes)."""

    root: Path
    params: BenchParams
    tools: dict[str, str]
    procs: ProcessSet = field(default_factory=ProcessSet)
    _backend: NginxServer | None = None
    _cert: tuple[Path, Path] | None = None
    _propylon_reason: str | None = None
    _propylon_checked: bool = False

    # -- shared pieces, made on first use ------------------------------------------

    def backend(self) -> NginxServer:
        """The backend nginx every scenario ends at (started once per run)."""
        if self._backend is None or not self._backend.proc.alive():
            self._backend = start_nginx(
                self.procs, self.tools["nginx"], "backend", self.root / "backend",
                self.params.workers,
            )
        return self._backend

    def cert(self) -> tuple[Path, Path]:
        """A self-signed certificate and key for the TLS fronts (made once per run)."""
        if self._cert is None:
            self._cert = make_self_signed(self.root / "tls")
        return self._cert

    # -- fronts ------------------------------------------------------------------

    def nginx_front(self, role: NginxRole, tag: str = "", backend_port: int | None = None,
                    path: str = "/", headers: tuple[str, ...] = ()) -> Target:
        """Start an nginx front (``proxy``, ``tls``, ``h2``, ``gzip`` or ``cache``)
        before the backend (or before another origin on ``backend_port``); ``tag``
        names its directory; the load asks for ``path`` with ``headers``. The cache
        role keeps its cache on tmpfs (``/dev/shm`` when writable), removed at exit."""
        port = self.backend().port if backend_port is None else backend_port
        cert, key = self.cert() if role in ("tls", "h2") else (None, None)
        cache_dir = None
        if role == "cache":
            shm = Path("/dev/shm")
            base = shm if shm.is_dir() and os.access(shm, os.W_OK) else self.root
            cache_dir = Path(tempfile.mkdtemp(prefix="propylon-bench-cache-", dir=base))
            atexit.register(shutil.rmtree, cache_dir, True)
        server = start_nginx(
            self.procs, self.tools["nginx"], role, self.root / (tag or f"nginx-{role}"),
            self.params.workers, backend_port=port, cert=cert, key=key, cache_dir=cache_dir,
        )
        scheme = "https" if role in ("tls", "h2") else "http"
        return Target(f"{scheme}://127.0.0.1:{server.port}{path}", server.proc, headers)

    def varnish_front(self) -> Target:
        """Start Varnish before the backend, loaded with the cacheable ``/1k``."""
        server = start_varnish(self.procs, self.tools["varnishd"], self.root / "varnish",
                               self.params.workers, self.backend().port)
        return Target(f"http://127.0.0.1:{server.port}{CACHE_PATH}", server.proc)

    def propylon_unavailable(self) -> str | None:
        """Why Propylon's public API cannot be imported, or ``None`` if it can."""
        if not self._propylon_checked:
            self._propylon_checked = True
            code = f"from propylon import {_PROPYLON_NAMES}"
            try:
                done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                      text=True, timeout=60)
            except subprocess.TimeoutExpired:
                self._propylon_reason = "import failed: timed out after 60s"
            else:
                if done.returncode != 0:
                    lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
                    self._propylon_reason = f"import failed: {lines[-1]}"
        return self._propylon_reason

    def propylon_front(self, tag: str = "propylon", tls_alpn: str | None = None,
                       backend_port: int | None = None, gzip_level: int = 0, path: str = "/",
                       headers: tuple[str, ...] = (), observe: bool = False,
                       cache: bool = False) -> Target:
        """Start ``bench/forwarder.py`` with ``threads: workers`` before the backend
        (or before another origin on ``backend_port``).

        With ``tls_alpn`` (e.g. ``"http/1.1"`` or ``"h2,http/1.1"``) it terminates TLS
        with the run's certificate and offers those ALPN protocols; with ``gzip_level``
        it compresses ``text/plain`` responses. ``tag`` names its directory and process
        in logs; the load asks for ``path`` with ``headers``. ``observe`` turns on the
        built-in metrics and a JSON access log in that directory; ``cache`` caches what
        the origin's Cache-Control allows in a MemCache.
        """
        if backend_port is None:
            backend_port = self.backend().port
        home = self.root / tag
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "conf.yaml"
        conf.write_text(
            "version: 1\n"
            f"threads: {self.params.workers}\n"
            f"pid_file: {home / 'propylon.pid'}\n"
            f"upgrade_sock: {home / 'upgrade.sock'}\n"
        )
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        https = tls_alpn is not None
        def argv_for(port: int) -> list[str]:
            argv = [sys.executable, str(_FORWARDER), "--backend-port", str(backend_port),
                    "--listen", f"127.0.0.1:{port}", "-c", str(conf)]
            if tls_alpn is not None:
                cert, key = self.cert()
                argv += ["--tls-cert", str(cert), "--tls-key", str(key), "--alpn", tls_alpn]
            if gzip_level:
                argv += ["--gzip-level", str(gzip_level)]
            if observe:
                argv += ["--observe", str(home)]
            if cache:
                argv.append("--cache")
            return argv

        proc, port = self._start_on_free_port(tag, home, env, argv_for, https=https)
        if tls_alpn is not None and tls_alpn.split(",")[0] == "h2":
            try:
                h2_get_status(port)
            except (OSError, RuntimeError) as exc:
                self.procs.stop(proc)
                raise NotAvailable(f"did not answer an HTTP/2 request: {exc}") from exc
        return Target(f"{'https' if https else 'http'}://127.0.0.1:{port}{path}", proc, headers)

    def gateway_front(self, tag: str = "propylon-gateway") -> Target:
        """Start ``propylon run -c`` on the gateway file of :mod:`bench.gateway_front`
        (JWT-authenticated route, high rate limit, metrics, JSON access log in its
        directory) with ``threads: workers``, before the backend. Every request of the
        load carries a valid bearer token."""
        from .gateway_front import bearer_token, gateway_config

        backend_port = self.backend().port
        home = self.root / tag
        home.mkdir(parents=True, exist_ok=True)
        headers = (f"Authorization: Bearer {bearer_token()}",)
        server = (f'{{threads: {self.params.workers}, pid_file: "{home / "propylon.pid"}", '
                  f'upgrade_sock: "{home / "upgrade.sock"}"}}')
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        def argv_for(port: int) -> list[str]:
            conf = home / "gateway.yaml"
            conf.write_text(gateway_config(f"127.0.0.1:{port}", f"127.0.0.1:{backend_port}",
                                           f"127.0.0.1:{free_port()}", str(home / "access.log"), server))
            return [sys.executable, "-m", "propylon", "run", "-c", str(conf)]

        proc, port = self._start_on_free_port(tag, home, env, argv_for, headers=headers)
        return Target(f"http://127.0.0.1:{port}/", proc, headers)

    def _start_on_free_port(self, tag: str, home: Path, env: dict, argv_for: Callable[[int], list[str]],
                            https: bool = False, headers: tuple[str, ...] = ()) -> tuple[Any, int]:
        """Start ``argv_for(port)`` on a free port until it answers the backend's body;
        up to three tries when another process took the port between choosing and binding."""
        for attempt in range(1, 4):
            port = free_port()
            # SIGINT is the fast shutdown; SIGTERM would start a long graceful drain.
            proc = self.procs.start(tag, argv_for(port), home / f"{tag}.log", env=env,
                                    stop_signal=signal.SIGINT)
            try:
                wait_http_ok(proc, port, https=https, expect_body=BACKEND_BODY, timeout=20.0,
                             headers=headers)
            except StartError as exc:
                self.procs.stop(proc)
                if attempt == 3 or not lost_port_race(str(exc)):
                    raise
                continue
            return proc, port
        raise AssertionError("unreachable: the last try returns or raises")

    # -- measuring -----------------------------------------------------------------

    def run(self, scenario: Scenario) -> ScenarioResult:
        """One scenario on its own (see ``run_group``)."""
        return self.run_group([scenario])[0]

    def run_group(self, scenarios: list[Scenario],
                  progress: Callable[[str], None] = lambda line: None) -> list[ScenarioResult]:
        """Start each scenario's target, then load them in turns for ``repeat`` rounds
        (the first round warms each one up), keep each one's median by req/s and stop
        the fronts. Never raises for a scenario's own failure: its result says what
        went wrong."""
        results = [ScenarioResult(s.name, s.group, s.role, "ok") for s in scenarios]
        targets: dict[int, Target] = {}
        runs: dict[int, list[tuple[LoadResult, float]]] = {}
        try:
            for i, (scenario, res) in enumerate(zip(scenarios, results)):
                progress(f"starting {scenario.name}: {scenario.description}")
                reason = scenario.unavailable(self)
                if reason:
                    res.status, res.note = "unavailable", reason
                    continue
                try:
                    targets[i] = scenario.start(self)
                except NotAvailable as exc:
                    res.status, res.note = "unavailable", str(exc)
                except (StartError, ParseError) as exc:
                    res.status, res.note = "failed", str(exc)
                else:
                    res.url = targets[i].url
                    runs[i] = []
            for round_no in range(self.params.repeat):
                for i in list(runs):
                    progress(f"measuring {scenarios[i].name} (round {round_no + 1} of {self.params.repeat})")
                    try:
                        runs[i].append(self._measure_once(scenarios[i], targets[i], warm_up=(round_no == 0)))
                    except (StartError, ParseError) as exc:
                        results[i].status, results[i].note = "failed", str(exc)
                        del runs[i]
            for i, measured in runs.items():
                res = results[i]
                res.all_rps = [load.requests_per_sec for load, _ in measured]
                measured.sort(key=lambda run: run[0].requests_per_sec)
                res.load, res.cpu_cores = measured[(len(measured) - 1) // 2]
        finally:
            for target in targets.values():
                if target.proc is not self.backend_proc():
                    self.procs.stop(target.proc)
        return results

    def backend_proc(self) -> BenchProcess | None:
        """The backend's process, if started."""
        return self._backend.proc if self._backend else None

    def _measure_once(self, scenario: Scenario, target: Target,
                      warm_up: bool) -> tuple[LoadResult, float]:
        p = self.params
        warmup = p.warmup if warm_up else 0.0
        pgid = target.proc.popen.pid
        if scenario.loadgen == "h2load":
            # h2load warms up inside the same run (--warm-up-time).
            cpu0, t0 = group_cpu_seconds(pgid), time.monotonic()
            load = h2load_mod.run_h2load(
                self.tools["h2load"], target.url, connections=p.connections,
                threads=p.loadgen_threads, duration=p.duration, warmup=warmup,
                streams=p.h2_streams, log_file=self.root / f"{scenario.name}-h2load.log",
            )
            # Approximate when warming up: the window includes h2load's warm-up.
        else:
            if warmup > 0:
                wrk_mod.run_wrk(self.tools["wrk"], target.url, connections=p.connections,
                                threads=p.loadgen_threads, duration=warmup, headers=target.headers)
            cpu0, t0 = group_cpu_seconds(pgid), time.monotonic()
            load = wrk_mod.run_wrk(self.tools["wrk"], target.url, connections=p.connections,
                                   threads=p.loadgen_threads, duration=p.duration,
                                   headers=target.headers)
        cores = (group_cpu_seconds(pgid) - cpu0) / max(1e-6, time.monotonic() - t0)
        if not target.proc.alive():
            raise StartError(f"{target.proc.name} died during the run; log tail:\n"
                             f"{target.proc.log_tail()}")
        return load, cores
