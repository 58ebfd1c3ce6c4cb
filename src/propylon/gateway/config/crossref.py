"""Checks across sections of a validated configuration, each problem named by its path."""

from __future__ import annotations

import difflib
import re
import string
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from .load import ConfigProblem
    from .models import GatewayConfig, Route

__all__ = ["cross_check", "redirect_fields"]

_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$")
_BUILTIN_FIELDS = frozenset({"host", "path", "query"})


def redirect_fields(location: str) -> list[str]:
    """The ``{names}`` a redirect location uses (raises ValueError when malformed)."""
    return [field for _, field, _, _ in string.Formatter().parse(location) if field is not None]


def _suggest(name: str, known: Iterable[str]) -> str:
    hint = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def _route_checks(i: int, route: "Route", conf: "GatewayConfig", listener_names: set) -> Iterable["ConfigProblem"]:
    from .load import ConfigProblem

    at = f"routes[{i}]"
    if route.proxy is not None and route.proxy.cluster not in conf.clusters:
        yield ConfigProblem(f"{at}.proxy.cluster", f"unknown cluster '{route.proxy.cluster}'"
                                                   f"{_suggest(route.proxy.cluster, conf.clusters)}")
    for key in ("traffic_split", "mirror"):
        plugin = getattr(route.plugins, key)
        if plugin is None:
            continue
        if route.proxy is None:
            yield ConfigProblem(f"{at}.plugins.{key}", "only a route that proxies to a cluster can use it")
        if plugin.cluster not in conf.clusters:
            yield ConfigProblem(f"{at}.plugins.{key}.cluster", f"unknown cluster '{plugin.cluster}'"
                                                               f"{_suggest(plugin.cluster, conf.clusters)}")
    for j, name in enumerate(route.listeners):
        if name not in listener_names:
            yield ConfigProblem(f"{at}.listeners[{j}]", f"unknown listener '{name}'{_suggest(name, listener_names)}")
    for j, host in enumerate(route.match.hosts):
        if not _HOST.match(host.lower()):
            yield ConfigProblem(f"{at}.match.hosts[{j}]",
                                f"invalid host {host!r} (a name, or '*.' followed by a name)")
    if route.rewrite is not None and route.rewrite.strip_prefix is not None \
            and not route.rewrite.strip_prefix.startswith("/"):
        yield ConfigProblem(f"{at}.rewrite.strip_prefix", "must start with '/'")
    if route.redirect is not None:
        groups: set = set()
        if route.match.path is not None and route.match.path.regex is not None:
            groups = set(re.compile(route.match.path.regex).groupindex)
        try:
            fields = redirect_fields(route.redirect.location)
        except ValueError as e:
            yield ConfigProblem(f"{at}.redirect.location", f"malformed template: {e}")
            return
        for field in fields:
            if field not in _BUILTIN_FIELDS and field not in groups:
                known = sorted(_BUILTIN_FIELDS | groups)
                yield ConfigProblem(f"{at}.redirect.location",
                                    f"unknown placeholder '{{{field}}}' (known: {', '.join(known)})")


def cross_check(conf: "GatewayConfig") -> Iterable["ConfigProblem"]:
    """Every problem that needs more than one section to see."""
    from .load import ConfigProblem

    names: dict[str, int] = {}
    addresses: dict[str, int] = {}
    for i, listener in enumerate(conf.listeners):
        if listener.name in names:
            yield ConfigProblem(f"listeners[{i}].name",
                                f"duplicate listener name '{listener.name}' (also listeners[{names[listener.name]}])")
        names.setdefault(listener.name, i)
        if listener.address in addresses:
            yield ConfigProblem(f"listeners[{i}].address",
                                f"address {listener.address} is also used by listeners[{addresses[listener.address]}]")
        addresses.setdefault(listener.address, i)
    route_names: dict[str, int] = {}
    for i, route in enumerate(conf.routes):
        if route.name is not None:
            if route.name in route_names:
                yield ConfigProblem(f"routes[{i}].name",
                                    f"duplicate route name '{route.name}' (also routes[{route_names[route.name]}])")
            route_names.setdefault(route.name, i)
        yield from _route_checks(i, route, conf, set(names))
