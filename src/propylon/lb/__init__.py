"""Load balancing: backends, discovery, selection and health checks.

The Python counterpart of pingora-load-balancing::

    from propylon.lb import LoadBalancer, RoundRobin, TcpHealthCheck

    lb = LoadBalancer.try_from_iter(["127.0.0.1:18080", "127.0.0.1:18081"], selection=RoundRobin)
    lb.set_health_check(TcpHealthCheck())
    lb.health_check_frequency = 1.0
    # the server runs `await lb.start(shutdown)` as a background service
    backend = lb.select(b"", 256)      # None when every backend is down

This package depends on ``propylon.errors``, the leaf ``propylon.shutdown`` and,
for the HTTP check, the HTTP/1 client of ``propylon.protocols``; it knows nothing
about the proxy.
"""

from .backend import Backend
from .backends import BackendHealth, Backends
from .balancer import LoadBalancer
from .discovery import (
    DnsDiscovery,
    FileDiscovery,
    InMemoryDiscovery,
    PushDiscovery,
    ServiceDiscovery,
    Static,
)
from .health import Health, HealthCheck, TcpHealthCheck
from .http_check import HttpHealthCheck
from .selection import (
    Consistent,
    FNVHash,
    KetamaHashing,
    Random,
    RoundRobin,
    Selector,
    Weighted,
)

__all__ = [
    "Backend",
    "BackendHealth",
    "Backends",
    "Consistent",
    "DnsDiscovery",
    "FNVHash",
    "FileDiscovery",
    "Health",
    "HealthCheck",
    "HttpHealthCheck",
    "InMemoryDiscovery",
    "KetamaHashing",
    "LoadBalancer",
    "PushDiscovery",
    "Random",
    "RoundRobin",
    "Selector",
    "ServiceDiscovery",
    "Static",
    "TcpHealthCheck",
    "Weighted",
]
