"""A cluster at run time: its load balancer, health checks, peers and passive health.

Built in two steps so that a reload can do the slow part off the event loop:
:func:`prepare_cluster` resolves addresses (may block on DNS) and checks what it
can; :func:`assemble_cluster` runs on the loop and is quick. It reuses the previous
snapshot's cluster as it is when its definition did not change (load balancer,
health state and check loop go on untouched); a changed cluster takes over the
previous :class:`~propylon.lb.Backends`, so a backend still listed keeps its health.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl

from ..lb import (Backend, Backends, Consistent, DnsDiscovery, FileDiscovery, HttpHealthCheck, LoadBalancer,
                  Random, RoundRobin, Static, TcpHealthCheck)
from ..connectors.pool import IdleGroup
from ..upstreams.peer import CertKey, HttpPeer, PeerOptions
from .config.load import ConfigProblem
from .config.models import Cluster
from .breaker import CircuitBreaker

__all__ = ["ClusterRuntime", "PreparedCluster", "prepare_cluster", "assemble_cluster", "request_key"]

log = logging.getLogger("propylon.gateway")

_SELECTION = {"round_robin": RoundRobin, "weighted": RoundRobin, "random": Random,
              "ketama": Consistent, "least_conn": RoundRobin}


@dataclass(frozen=True)
class PreparedCluster:
    """What a cluster needs that may block to find out: its static backends."""

    name: str
    conf: Cluster
    backends: frozenset


def _backend(address: str, weight: int) -> list[Backend]:
    try:
        return [Backend(address, weight)]
    except ValueError:
        return [Backend(b.addr, weight) for b in Static.from_iter([address]).get()]


def prepare_cluster(name: str, conf: Cluster) -> tuple[Optional[PreparedCluster], list[ConfigProblem]]:
    """Resolve the static backends (blocking). Problems are named by path."""
    found: set = set()
    problems = []
    for i, b in enumerate(conf.backends):
        try:
            found.update(_backend(b.address, b.weight))
        except ValueError as e:
            problems.append(ConfigProblem(f"clusters.{name}.backends[{i}].address", str(e)))
    for key, pair in (("tls.client_cert", conf.tls.client_cert if conf.tls else None),):
        if pair is not None:
            try:
                ssl.create_default_context().load_cert_chain(pair.cert, pair.key)
            except (OSError, ssl.SSLError) as e:
                problems.append(ConfigProblem(f"clusters.{name}.{key}", f"cannot load: {e}"))
    if problems:
        return None, problems
    return PreparedCluster(name, conf, frozenset(found)), []


def request_key(spec: Optional[str]) -> Callable[[Any], bytes]:
    """The function giving a request's key named by ``spec`` (``hash_on``, ``sticky_on``)."""
    if spec is None:
        return lambda session: b""
    if spec == "client_ip":
        return lambda session: (session.client_ip or "").encode()
    if spec == "path":
        return lambda session: session.req_header.path.encode()
    if spec == "uri":
        return lambda session: session.req_header.uri.encode()
    kind, _, name = spec.partition(":")
    if kind == "header":
        return lambda session: session.get_header_bytes(name) or b""
    if kind == "query":
        return lambda session: dict(parse_qsl(session.req_header.query or "")).get(name, "").encode()

    def cookie(session) -> bytes:
        jar = SimpleCookie()
        jar.load(session.get_header("cookie") or "")
        morsel = jar.get(name)
        return morsel.value.encode() if morsel is not None else b""

    return cookie


def _health_check(conf: Cluster) -> Any:
    hc = conf.health_check
    if hc is None:
        return None
    if hc.type == "tcp":
        return TcpHealthCheck(connection_timeout=hc.timeout, consecutive_success=hc.healthy_threshold,
                              consecutive_failure=hc.unhealthy_threshold)
    expected = frozenset(hc.expected_status)
    body = hc.expected_body.encode() if hc.expected_body is not None else None

    def validator(status: int, headers: dict, content: bytes) -> bool:
        return status in expected and (body is None or body in content)

    return HttpHealthCheck(hc.host, path=hc.path, connection_timeout=hc.timeout, read_timeout=hc.timeout,
                           consecutive_success=hc.healthy_threshold, consecutive_failure=hc.unhealthy_threshold,
                           validator=validator)


def _discovery(prepared: PreparedCluster) -> Any:
    d = prepared.conf.discovery
    if d.type == "file":
        return FileDiscovery(d.path)  # type: ignore[arg-type]
    if d.type == "dns":
        return DnsDiscovery(d.name, d.port)  # type: ignore[arg-type]
    return Static(prepared.backends)


class ClusterRuntime:
    """One cluster of a snapshot. Selection and bookkeeping for the gateway proxy."""

    def __init__(self, prepared: PreparedCluster, lb: LoadBalancer) -> None:
        conf = prepared.conf
        self.name = prepared.name
        self.prepared = prepared
        self.conf = conf
        self.lb = lb
        self.retries = conf.retries
        self.hash_key = request_key(conf.hash_on)
        self.least_conn = conf.selection == "least_conn"
        self.active: dict[int, int] = {}          # least_conn: requests in flight per backend
        self._rotation = 0
        self._failures: dict[int, int] = {}       # passive health: consecutive failures
        self.outlier = conf.outlier
        #: Shared by every route sending here (kept across reloads while the cluster is unchanged).
        self.breaker = (CircuitBreaker(conf.circuit_breaker, f"cluster {self.name}")
                        if conf.circuit_breaker is not None else None)
        tls = conf.tls
        t = conf.timeouts
        self._options = PeerOptions(connection_timeout=t.connect, read_timeout=t.read, write_timeout=t.write,
                                    idle_timeout=t.idle, verify_cert=tls.verify if tls else True,
                                    verify_hostname=tls.verify if tls else True,
                                    ca_file=tls.ca_file if tls else None)
        self._tls = tls is not None
        self._sni = tls.sni if tls else ""
        self._client_cert = CertKey(tls.client_cert.cert, tls.client_cert.key) if tls and tls.client_cert else None
        #: ``pool_size``: the idle connections to all this cluster's backends kept per worker
        self._idle_group = IdleGroup(conf.pool_size) if conf.pool_size is not None else None
        self._peers: dict[int, HttpPeer] = {}

    # --- per request -------------------------------------------------------------------
    def select(self, session: Any, tried: list) -> Optional[Backend]:
        """A ready backend not tried yet by this request, or None."""
        if self.least_conn:
            return self._least_conn(tried)
        key = self.hash_key(session)
        if not tried:
            return self.lb.select(key, 256)
        return self.lb.select_with(key, 256, lambda b, ready: ready and b not in tried)

    def _least_conn(self, tried: list) -> Optional[Backend]:
        backends = self.lb.backends
        candidates = [b for b in backends.get_backend() if backends.ready(b) and b not in tried]
        if not candidates:
            return None
        # Rotate the starting point so that ties spread over the backends.
        self._rotation = (self._rotation + 1) % len(candidates)
        ordered = candidates[self._rotation:] + candidates[:self._rotation]
        active = self.active
        return min(ordered, key=lambda b: active.get(b.hash_key, 0) / b.weight)

    def peer(self, backend: Backend) -> HttpPeer:
        """The peer for ``backend`` (made once per snapshot and backend)."""
        peer = self._peers.get(backend.hash_key)
        if peer is None:
            peer = HttpPeer(backend, self._tls, self._sni, self._options)
            peer.client_cert_key = self._client_cert
            peer.idle_group = self._idle_group
            self._peers[backend.hash_key] = peer
        return peer

    def acquire(self, backend: Backend) -> None:
        if self.least_conn:
            self.active[backend.hash_key] = self.active.get(backend.hash_key, 0) + 1

    def release(self, backend: Backend) -> None:
        if self.least_conn:
            n = self.active.get(backend.hash_key, 0) - 1
            if n > 0:
                self.active[backend.hash_key] = n
            else:
                self.active.pop(backend.hash_key, None)

    def report(self, backend: Backend, ok: bool) -> None:
        """Passive health: after ``consecutive_failures`` failures in a row the backend
        leaves rotation for ``cooldown`` seconds."""
        outlier = self.outlier
        if outlier is None:
            return
        key = backend.hash_key
        if ok:
            if key in self._failures:
                del self._failures[key]
            return
        n = self._failures.get(key, 0) + 1
        if n < outlier.consecutive_failures:
            self._failures[key] = n
            return
        self._failures.pop(key, None)
        backends = self.lb.backends
        backends.set_enable(backend, False)
        log.warning("cluster %s: %s ejected for %gs after %d consecutive failures",
                    self.name, backend.addr, outlier.cooldown, n)
        asyncio.get_running_loop().call_later(outlier.cooldown, self._readmit, backend)

    def _readmit(self, backend: Backend) -> None:
        self.lb.backends.set_enable(backend, True)
        log.info("cluster %s: %s back in rotation", self.name, backend.addr)

    def describe(self) -> str:
        if self.conf.discovery.type != "static":
            d = self.conf.discovery
            where = d.path if d.type == "file" else f"{d.name}:{d.port}"
            return f"{self.conf.selection}, {d.type} discovery {where}"
        backends = ", ".join(f"{b.addr} w{b.weight}" for b in sorted(self.prepared.backends))
        return f"{self.conf.selection}: {backends}"


def assemble_cluster(prepared: PreparedCluster, old: Optional[ClusterRuntime]) -> ClusterRuntime:
    """The cluster for a new snapshot (quick, no I/O): ``old`` itself when unchanged."""
    if old is not None and old.conf == prepared.conf and old.prepared.backends == prepared.backends:
        return old
    conf = prepared.conf
    discovery = _discovery(prepared)
    hc = _health_check(conf)
    if old is not None:
        # Take over the previous set: backends still listed keep their health.
        backends = old.lb.backends
        backends.discovery = discovery
        backends.set_health_check(hc)
    else:
        backends = Backends(discovery, hc)
    if conf.discovery.type == "static":
        backends.apply(prepared.backends)
    lb = LoadBalancer.from_backends(backends, _SELECTION[conf.selection])
    lb.health_check_frequency = conf.health_check.interval if conf.health_check else None
    lb.update_frequency = conf.discovery.refresh if conf.discovery.type != "static" else None
    return ClusterRuntime(prepared, lb)
