"""Turning a gateway file into a server's services, and printing its routing table."""

from __future__ import annotations

import os
import ssl
from typing import Any, Optional

from ..protocols.http.v1.server import HttpServerOptions
from ..protocols.tls.settings import TlsConfigError, TlsSettings
from ..proxy import http_proxy_service
from ..services import background_service
from .config.load import ConfigProblem
from .config.models import GatewayConfig, Listener
from .proxy import GatewayProxy
from .runtime import PROXY, REDIRECT, Gateway, Snapshot

__all__ = ["add_gateway_services", "listener_service", "routing_table", "routes_data", "listener_problems",
           "gateway_observer"]


def _tls_settings(listener: Listener) -> TlsSettings:
    tls = listener.tls
    settings = TlsSettings.intermediate(tls.default.cert, tls.default.key)  # type: ignore[union-attr]
    for entry in tls.certificates:  # type: ignore[union-attr]
        for name in entry.server_names:
            settings.add_certificate(name, entry.cert, entry.key)
    settings.min_version = ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2  # type: ignore[union-attr]
    if listener.h2:
        settings.enable_h2()
    return settings


def listener_problems(conf: GatewayConfig) -> list[ConfigProblem]:
    """Certificates that cannot be loaded, named by path (checked by ``-t`` and reloads)."""
    out = []
    for i, listener in enumerate(conf.listeners):
        if listener.tls is not None:
            try:
                _tls_settings(listener).build_context()
            except TlsConfigError as e:
                out.append(ConfigProblem(f"listeners[{i}].tls", str(e)))
    return out


def gateway_observer(conf: GatewayConfig, server_conf: Any, source: Optional[str] = None,
                     registry: Any = None) -> Optional[Any]:
    """The built-in observability that ``metrics`` and ``access_log`` ask for, or None.

    Made once per process before the workers start (their metrics files and the log's
    writer are set up from it); each listener reports through ``for_service`` of it.
    """
    if conf.metrics is None and conf.access_log is None:
        return None
    from ..metrics import AccessLogConfig, Observability

    log_conf = None
    if conf.access_log is not None:
        a = conf.access_log
        path = "-" if a.path in ("stdout", "-") else a.path
        if path != "-" and source is not None:
            path = os.path.join(os.path.dirname(os.path.abspath(source)), path)
        log_conf = AccessLogConfig(path=path, format=a.format, fields=a.chosen_fields(),
                                   flush_interval=a.flush_interval)
    trace = conf.metrics.trace if conf.metrics is not None else None
    # The request_id plugin owns X-Request-Id on the routes that ask for it.
    return Observability(server_conf, service="gateway", metrics=conf.metrics is not None,
                         access_log=log_conf, request_id=False, registry=registry,
                         trace_token=trace.token if trace is not None else None,
                         trace_sample=trace.sample if trace is not None else 0.0,
                         trace_keep=trace.keep if trace is not None else 0)


def listener_service(server_conf: Any, gateway: Gateway, listener: Listener) -> tuple[Any, GatewayProxy]:
    """The proxy service of one listener, with its one endpoint (not bound yet), and its proxy."""
    t = listener.timeouts
    options = HttpServerOptions(header_read_timeout=t.header_read, keepalive_timeout=t.keepalive,
                                body_read_timeout=t.body_read, write_timeout=t.write, h2c=listener.h2c)
    proxy = GatewayProxy(gateway, listener.name)
    observer = gateway.observer.for_service(listener.name) if gateway.observer is not None else None
    service = http_proxy_service(server_conf, proxy, name=f"gateway listener {listener.name}",
                                 server_options=options, observer=observer)
    if listener.tls is not None:
        service.add_tls_with_settings(listener.address, _tls_settings(listener))
    else:
        service.add_tcp(listener.address)
    return service, proxy


def add_gateway_services(server: Any, gateway: Gateway) -> None:
    """One proxy service per listener, the gateway's background service, metrics, admin."""
    conf = gateway.current.conf
    gateway.server_conf = server.configuration
    gateway.observer = gateway_observer(conf, server.configuration, gateway.path)
    services: list = []
    for listener in conf.listeners:
        service, proxy = listener_service(server.configuration, gateway, listener)
        gateway.listeners[listener.name] = (listener, service, proxy)
        services.append(service)
    services.append(background_service("gateway", gateway))
    if conf.admin is not None:
        from .admin import admin_service

        admin = admin_service(gateway, conf.admin)
        admin.add_tcp(conf.admin.address)
        services.append(admin)
    if conf.metrics is not None:
        from ..metrics import prometheus_http_service

        metrics = prometheus_http_service(traces=gateway.observer if conf.metrics.trace is not None else None)
        metrics.add_tcp(conf.metrics.address)
        services.append(metrics)
    server.add_services(services)


def _action(snapshot: Snapshot, route: Any) -> str:
    conf = route.conf
    if route.kind == PROXY:
        cluster = snapshot.clusters[route.cluster]
        text = f"proxy → {route.cluster} ({cluster.describe()})"
        rw = conf.rewrite
        if rw is not None:
            text += f", strip {rw.strip_prefix}" if rw.strip_prefix else f", rewrite {rw.regex.pattern} → {rw.regex.replacement}"
    elif route.kind == REDIRECT:
        text = f"redirect {conf.redirect.status} → {conf.redirect.location}"
    else:
        text = f"respond {conf.respond.status}"
    plugins = [k for k in ("request_id", "ip", "cors", "basic_auth", "bearer_auth", "api_key", "jwt",
                           "rate_limit", "inflight", "body_size", "traffic_split", "mirror", "circuit_breaker",
                           "compression",
                           "cache") if getattr(conf.plugins, k) is not None]
    plugins += [p.plugin for p in conf.plugins.python]
    if plugins:
        text += f"  [{', '.join(plugins)}]"
    return text


def routes_data(snapshot: Snapshot) -> list[dict]:
    """The effective table as data, in the order routes are tried (for the admin API)."""
    out = []
    for listener in snapshot.conf.listeners:
        for host, compiled in snapshot.router.table(listener.name):
            for c in compiled:
                route = snapshot.routes[c.index]
                out.append({"listener": listener.name, "host": host, "match": c.describe_match(),
                            "route": c.name, "priority": c.conf.priority, "kind": route.kind,
                            "cluster": route.cluster, "action": _action(snapshot, route)})
    return out


def routing_table(snapshot: Snapshot) -> str:
    """The effective table: per listener, per host, the routes in the order they are tried."""
    lines = []
    for listener in snapshot.conf.listeners:
        scheme = listener.protocol + ("+h2" if listener.protocol == "https" and listener.h2 else "")
        scheme += "+h2c" if listener.h2c else ""
        lines.append(f"listener {listener.name} ({scheme}://{listener.address})")
        for host, compiled in snapshot.router.table(listener.name):
            lines.append(f"  host {host}")
            if not compiled:
                lines.append("    (no route: 404)")
            width = max((len(c.describe_match()) for c in compiled), default=0)
            for c in compiled:
                route = snapshot.routes[c.index]
                prio = f" priority {c.conf.priority}" if c.conf.priority else ""
                lines.append(f"    {c.describe_match():<{width}}  {_action(snapshot, route)}  "
                             f"(route {c.name}{prio})")
    return "\n".join(lines)
