"""Plugins that decide where a route's traffic goes: canary splits and mirrors.

``TrafficSplit`` sends a share of a route's requests to another cluster. It only
chooses the cluster (``ctx.cluster``); selection, health and retries are that
cluster's own. ``Mirror`` sends a copy of each request to a second cluster in the
background and ignores the answer. ``CircuitBreaker`` stops sending requests to what
keeps failing (:mod:`propylon.gateway.breaker`); a route has one through
``CircuitBreakerPlugin``, a cluster its own (see ``GatewayProxy.upstream_peer``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from typing import Any, Optional

from prometheus_client import Counter

from ...connectors.http import HttpConnector
from ...errors import Error, ErrorSource
from ...repeats import RepeatedErrors
from ..breaker import CircuitBreaker, circuit_open
from ..clusters import request_key
from ..config import models as m
from .base import Plugin

__all__ = ["TrafficSplit", "Mirror", "CircuitBreakerPlugin", "split_bucket", "MIRROR_COPIES"]

log = logging.getLogger("propylon.gateway")

MIRROR_COPIES = Counter(
    "propylon_gateway_mirror_copies", "Request copies for mirror clusters, by what became of them: "
    "answered (any status), failed (connect, timeout, I/O), dropped (too many in progress) or "
    "too_large (the body is over max_body)", ["route", "result"])

#: Shares are decided in steps of 1/10,000 (0.01 %).
BUCKETS = 10_000


def split_bucket(key: bytes) -> int:
    """The bucket in [0, BUCKETS) of a sticky key: the same in every process and
    instance (unlike ``hash()``, which is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % BUCKETS


class TrafficSplit(Plugin):
    """``percent`` of the requests to ``cluster``; by a hash of ``sticky_on`` when given."""

    def __init__(self, conf: m.TrafficSplitPlugin) -> None:
        super().__init__()
        self.cluster = conf.cluster
        self.threshold = round(conf.percent * BUCKETS / 100)
        self.key = request_key(conf.sticky_on) if conf.sticky_on is not None else None
        self._random = random.random

    def canary(self, session) -> bool:
        """Whether this request goes to the split's cluster."""
        if self.key is not None:
            key = self.key(session)
            if key:
                return split_bucket(key) < self.threshold
        return self._random() * BUCKETS < self.threshold

    async def request_filter(self, session, ctx) -> bool:
        if self.canary(session):
            ctx.cluster = ctx.snapshot.clusters[self.cluster]
        return False


class _Copy:
    """One request's copy while its body arrives."""

    __slots__ = ("head", "chunks", "size", "done")

    def __init__(self, head: Any) -> None:
        self.head = head          # the head sent upstream (copied when the copy leaves)
        self.chunks: list = []
        self.size = 0
        self.done = False         # sent, dropped or too large: retries add nothing


class Mirror(Plugin):
    """A copy of every request to ``cluster``, its answer ignored (see ``MirrorPlugin``).

    The copy leaves once the whole request body went upstream, on a task of its own
    with its own connection pool: the client's request never waits for it, and a
    mirror that is slow, dead or saturated costs the client nothing but a counter.
    """

    def __init__(self, conf: m.MirrorPlugin, route_name: str) -> None:
        super().__init__()
        self.cluster = conf.cluster
        self.max_body = conf.max_body
        self.max_inflight = conf.max_inflight
        self.timeout = conf.timeout
        self.inflight = 0
        self.connector = HttpConnector(pool_size=conf.max_inflight)
        self._tasks: set = set()
        self._repeats = RepeatedErrors()
        self._answered = MIRROR_COPIES.labels(route_name, "answered")
        self._failed = MIRROR_COPIES.labels(route_name, "failed")
        self._dropped = MIRROR_COPIES.labels(route_name, "dropped")
        self._too_large = MIRROR_COPIES.labels(route_name, "too_large")

    async def upstream_request_filter(self, session, upstream_request, ctx) -> None:
        copy = ctx.vars.get("mirror")
        if copy is None or not copy.done:  # a retry starts the body again
            ctx.vars["mirror"] = _Copy(upstream_request)

    async def request_body_filter(self, session, body, end_of_stream, ctx) -> None:
        copy = ctx.vars.get("mirror")
        if copy is None or copy.done:
            return
        if body:
            copy.size += len(body)
            if copy.size > self.max_body:
                copy.done = True
                copy.chunks = []
                self._too_large.inc()
                return
            copy.chunks.append(body)
        if end_of_stream:
            copy.done = True
            self._launch(session, ctx, copy)

    def _launch(self, session, ctx, copy: _Copy) -> None:
        if self.inflight >= self.max_inflight:
            self._dropped.inc()
            return
        cluster = ctx.snapshot.clusters[self.cluster]
        backend = cluster.select(session, [])
        if backend is None:
            self._fail(f"no ready backend in cluster {self.cluster}")
            return
        head = copy.head.copy()
        body = b"".join(copy.chunks)
        head.remove_header(b"transfer-encoding")
        if body or head.headers.get("content-length") is not None:
            head.insert_header(b"content-length", str(len(body)).encode())
        self.inflight += 1
        task = asyncio.get_running_loop().create_task(self._send(cluster.peer(backend), head, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, peer: Any, head: Any, body: bytes) -> None:
        conn: Optional[Any] = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = self.connector.reuse(peer)
                if conn is None:
                    conn, _ = await self.connector.get(peer)
                conn.send_request_header(head, bool(body), True)
                if body:
                    conn.write_body(body)
                    conn.finish_body(None)
                    await conn.drain()
                resp = await conn.read_response_header()
                while 100 <= resp.status < 200:
                    resp = await conn.read_response_header()
                while await conn.read_body() is not None:
                    pass  # read to the end so that the connection can be reused
            self.connector.release(peer, conn)
            conn = None
            self._answered.inc()
        except (Error, OSError, TimeoutError) as e:
            what = f"no answer within {self.timeout:g}s" if isinstance(e, TimeoutError) else str(e)
            self._fail(f"{peer}: {what}")
        except asyncio.CancelledError:
            raise
        except Exception:  # a defect: say so once, never let it reach the event loop's handler
            log.exception("mirror to cluster %s failed", self.cluster)
            self._failed.inc()
        finally:
            self.inflight -= 1
            if conn is not None:
                conn.abort()

    def _fail(self, why: str) -> None:
        self._failed.inc()
        line = f"mirror to cluster {self.cluster}: copy not delivered: {why}"
        if not self._repeats.repeated(line):
            log.warning("%s", line)
            self._repeats.logged(line, log, logging.WARNING, line)


class CircuitBreakerPlugin(Plugin):
    """A route's own breaker: its requests' answers (a 5xx or an upstream failure) count."""

    def __init__(self, conf: m.CircuitBreakerConf, route_name: str) -> None:
        super().__init__()
        self.breaker = CircuitBreaker(conf, f"route {route_name}")

    async def request_filter(self, session, ctx) -> bool:
        why = self.breaker.refusal()
        if why is not None:
            raise circuit_open(why)
        ctx.vars["circuit_breaker"] = True
        return False

    async def logging(self, session, error, ctx) -> None:
        if "circuit_breaker" not in ctx.vars:
            return  # refused by the breaker or by an earlier plugin: nothing went upstream
        resp = session.response_written()
        status = resp.status if resp is not None else 0
        if error is not None and error.esource is not ErrorSource.UPSTREAM and status < 500:
            return  # the client went away: says nothing of the upstream
        self.breaker.record(error is None and status < 500)
