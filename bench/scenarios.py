"""The scenario registry: what can be measured, each as one small entry.

A scenario names its **group** (rows compared with each other), its **role** in the
group (``baseline``: the backend alone; ``reference``: nginx doing the same job;
``propylon``: our engine doing it) and the load generator it needs. Propylon rows are
reported as ratios against the group's reference row.

To add one (say, a slow backend, a bigger body, or HTTP/2 to the upstream), write a ``start`` function that returns a
:class:`~bench.runner.Target`, optionally an ``unavailable`` check, and register it
below with the group it belongs to. The harness, table and JSON pick it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

from .nginx import CACHE_PATH

if TYPE_CHECKING:
    from .runner import Target, Workbench

__all__ = ["DEFAULT_SCENARIOS", "SCENARIOS", "Scenario", "select"]

Role = Literal["baseline", "reference", "propylon"]
LoadGen = Literal["wrk", "h2load"]


def _never(bench: Workbench) -> str | None:
    return None


@dataclass(frozen=True)
class Scenario:
    """One row of the report: how to start its target and how to load it."""

    name: str
    group: str
    role: Role
    loadgen: LoadGen
    description: str
    start: Callable[[Workbench], Target]
    unavailable: Callable[[Workbench], str | None] = _never
    #: External programs this scenario needs, when more than nginx and its load generator.
    needs: tuple[str, ...] = ()

    @property
    def tools(self) -> tuple[str, ...]:
        """External programs this scenario needs."""
        return ("nginx", self.loadgen, *self.needs)


# What the compression group's load generator asks for (curl and browsers send more).
_GZIP = ("Accept-Encoding: gzip",)


def _backend(bench: Workbench) -> Target:
    from .runner import Target

    server = bench.backend()
    return Target(f"http://127.0.0.1:{server.port}/", server.proc)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("backend", "http1", "baseline", "wrk",
                 'nginx backend alone: return 200 "hello"', _backend),
        Scenario("nginx", "http1", "reference", "wrk",
                 "nginx reverse proxy, upstream keepalive 64",
                 lambda bench: bench.nginx_front("proxy")),
        Scenario("propylon", "http1", "propylon", "wrk",
                 "Propylon forwarder (bench/forwarder.py), same backend",
                 lambda bench: bench.propylon_front(),
                 lambda bench: bench.propylon_unavailable()),
        Scenario("propylon-observed", "http1", "propylon", "wrk",
                 "the same forwarder with built-in metrics and a JSON access log",
                 lambda bench: bench.propylon_front("propylon-observed", observe=True),
                 lambda bench: bench.propylon_unavailable()),
        Scenario("propylon-gateway", "http1", "propylon", "wrk",
                 "propylon run -c: a route with JWT auth (HS256 bearer on every request), a high "
                 "rate limit, built-in metrics and a JSON access log to a file (bench/gateway_front.py)",
                 lambda bench: bench.gateway_front(),
                 lambda bench: bench.propylon_unavailable()),
        Scenario("nginx-tls", "tls", "reference", "wrk",
                 "nginx terminating TLS 1.2/1.3 (self-signed P-256), HTTP/1.1",
                 lambda bench: bench.nginx_front("tls")),
        Scenario("propylon-tls", "tls", "propylon", "wrk",
                 "Propylon forwarder terminating TLS (same cert), HTTP/1.1",
                 lambda bench: bench.propylon_front("propylon-tls", "http/1.1"),
                 lambda bench: bench.propylon_unavailable()),
        Scenario("nginx-h2", "h2", "reference", "h2load",
                 "nginx terminating TLS with HTTP/2 (ALPN h2), h2load",
                 lambda bench: bench.nginx_front("h2")),
        Scenario("propylon-h2", "h2", "propylon", "h2load",
                 "Propylon forwarder terminating TLS with HTTP/2 (ALPN h2), h2load",
                 lambda bench: bench.propylon_front("propylon-h2", "h2,http/1.1"),
                 lambda bench: bench.propylon_unavailable()),
        Scenario("nginx-gzip", "gzip", "reference", "wrk",
                 "nginx reverse proxy, gzip on, gzip_comp_level 1, 4 KiB text/plain from /text",
                 lambda bench: bench.nginx_front("gzip", path="/text", headers=_GZIP)),
        Scenario("propylon-gzip", "gzip", "propylon", "wrk",
                 "Propylon forwarder compressing with gzip level 1, same 4 KiB text/plain",
                 lambda bench: bench.propylon_front("propylon-gzip", gzip_level=1, path="/text",
                                                    headers=_GZIP),
                 lambda bench: bench.propylon_unavailable()),
        # Two references: the ratios are taken against the last one listed, nginx.
        Scenario("varnish-cache", "cache-hit", "reference", "wrk",
                 "Varnish (malloc storage), hits of a 1 KiB object (/1k)",
                 lambda bench: bench.varnish_front(), needs=("varnishd",)),
        Scenario("nginx-cache", "cache-hit", "reference", "wrk",
                 "nginx proxy_cache on tmpfs, hits of the same 1 KiB object",
                 lambda bench: bench.nginx_front("cache", path=CACHE_PATH)),
        Scenario("propylon-cache", "cache-hit", "propylon", "wrk",
                 "Propylon forwarder caching in a MemCache, hits of the same 1 KiB object",
                 lambda bench: bench.propylon_front("propylon-cache", path=CACHE_PATH, cache=True),
                 lambda bench: bench.propylon_unavailable()),
    )
}

DEFAULT_SCENARIOS = tuple(SCENARIOS)


def select(names: list[str] | None) -> list[Scenario]:
    """The scenarios to run, in registry order; ``names`` may hold comma-separated lists.

    Raises ``KeyError`` naming the unknown scenario.
    """
    if not names:
        return [SCENARIOS[n] for n in DEFAULT_SCENARIOS]
    wanted = {n.strip() for item in names for n in item.split(",") if n.strip()}
    unknown = sorted(wanted - SCENARIOS.keys())
    if unknown:
        raise KeyError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return [s for s in SCENARIOS.values() if s.name in wanted]
