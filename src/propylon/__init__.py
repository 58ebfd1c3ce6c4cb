"""Propylon: fast, programmable HTTP proxies and API gateways in async Python.

The names most programs need are importable from here::

    from propylon import Server, ProxyHttp, HttpPeer, http_proxy_service

Everything else lives in its layer's package (``propylon.lb``, ``propylon.limits``,
``propylon.protocols`` ...). Names load on first use, so ``import propylon`` stays
cheap for programs that only need a part of it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_WHERE = {
    # server and services
    "Server": "propylon.server.server",
    "ServerConf": "propylon.server.configuration",
    "ConfigError": "propylon.server.configuration",
    "Opt": "propylon.server.options",
    "ShutdownWatch": "propylon.shutdown",
    "Service": "propylon.services.listening",
    "BackgroundService": "propylon.services.background",
    "background_service": "propylon.services.background",
    "ServerApp": "propylon.apps.server_app",
    "GenBackgroundService": "propylon.services.background",
    "TcpSocketOptions": "propylon.services.listeners",
    "ListeningApp": "propylon.apps.base",
    "Stream": "propylon.protocols.l4",
    # errors
    "Error": "propylon.errors",
    "ErrorType": "propylon.errors",
    "ErrorSource": "propylon.errors",
    "RetryType": "propylon.errors",
    # HTTP
    "RequestHeader": "propylon.protocols.http.header",
    "ResponseHeader": "propylon.protocols.http.header",
    "HeaderMap": "propylon.protocols.http.header",
    "HttpServerOptions": "propylon.protocols.http.v1.server",
    "H2Options": "propylon.protocols.http.v2.options",
    "CompressionOptions": "propylon.protocols.http.compression",
    "HttpPeer": "propylon.upstreams.peer",
    "PeerOptions": "propylon.upstreams.peer",
    "ALPN": "propylon.upstreams.peer",
    "CertKey": "propylon.upstreams.peer",
    "TcpKeepalive": "propylon.upstreams.peer",
    # the proxy
    "ProxyHttp": "propylon.proxy.proxy_trait",
    "FailToProxy": "propylon.proxy.proxy_trait",
    "Session": "propylon.proxy.session",
    "http_proxy_service": "propylon.proxy.service",
    "prometheus_http_service": "propylon.metrics.prometheus",
    "Observability": "propylon.metrics.observer",
    "AccessLogConfig": "propylon.metrics.access_log",
    "TlsSettings": "propylon.protocols.tls.settings",
    "TlsConfigError": "propylon.protocols.tls.settings",
    # load balancing
    "LoadBalancer": "propylon.lb",
    "Backend": "propylon.lb",
    "Backends": "propylon.lb",
    "RoundRobin": "propylon.lb",
    "Random": "propylon.lb",
    "FNVHash": "propylon.lb",
    "Consistent": "propylon.lb",
    "KetamaHashing": "propylon.lb",
    "ServiceDiscovery": "propylon.lb",
    "Static": "propylon.lb",
    "FileDiscovery": "propylon.lb",
    "DnsDiscovery": "propylon.lb",
    "InMemoryDiscovery": "propylon.lb",
    "PushDiscovery": "propylon.lb",
    "HealthCheck": "propylon.lb",
    "TcpHealthCheck": "propylon.lb",
    "HttpHealthCheck": "propylon.lb",
    # limits and edge security
    "Rate": "propylon.limits",
    "RateComponents": "propylon.limits",
    "Inflight": "propylon.limits",
    "Estimator": "propylon.limits",
    "RedisRate": "propylon.limits",
    "RedisInflight": "propylon.limits",
    "IpAccessList": "propylon.security",
    "BearerAuth": "propylon.security",
    "BasicAuth": "propylon.security",
    "BodySizeLimit": "propylon.security",
    # caching
    "CacheKey": "propylon.cache.key",
    "CacheMeta": "propylon.cache.meta",
    "CacheMetaDefaults": "propylon.cache.meta",
    "CacheControl": "propylon.cache.cache_control",
    "resp_cacheable": "propylon.cache.filters",
    "CachePhase": "propylon.cache.phase",
    "NoCacheReason": "propylon.cache.phase",
    "HttpCache": "propylon.cache.http_cache",
    "MemCache": "propylon.cache.memory",
    "DiskCache": "propylon.cache.disk",
    "RedisCache": "propylon.cache.redis_store",
    "LruEviction": "propylon.cache.eviction",
    "EvictionManager": "propylon.cache.eviction",
    "CacheLock": "propylon.cache.lock",
    "PurgeBroadcast": "propylon.cache.purge",
    "CacheStats": "propylon.cache.stats",
}

__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'propylon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
