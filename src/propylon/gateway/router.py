"""The route table: compiled once from the configuration, read-only afterwards.

Precedence, for the routes a listener serves:

1. higher ``priority`` first;
2. then the more specific host: an exact host, then wildcards by length of their
   suffix (``*.a.example.com`` before ``*.example.com``), then routes with no host;
3. then the more specific path: ``exact``, then ``prefix`` (longer first), then
   ``regex``, then no path condition;
4. then more conditions on method, headers and query;
5. then the order in the file.

For every exact host and every wildcard suffix the table holds the whole ordered
list of routes that can apply to it, so a request costs one dictionary lookup (or
one per label of its host for wildcards) and then a scan of that list only. Every
regex is compiled here; nothing is compiled per request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Mapping, NamedTuple, Optional
from urllib.parse import parse_qsl

from .config.models import Route

__all__ = ["CompiledRoute", "Router", "RouteMatch", "NO_CAPTURES", "normalize_host"]

_EXACT, _PREFIX, _REGEX, _ANY_PATH = 0, 1, 2, 3
#: The captures of a match without a regex: one shared, read-only empty mapping.
NO_CAPTURES: Mapping[str, Any] = MappingProxyType({})
_HOST_EXACT, _HOST_WILDCARD, _HOST_ANY = 0, 1, 2


def normalize_host(host: Optional[str]) -> str:
    """Lower-case, without port or trailing dot (``Example.COM:8080`` → ``example.com``)."""
    if not host:
        return ""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host.rstrip(".")


@dataclass(frozen=True, slots=True)
class _ValueTest:
    name: str
    exact: Optional[str]
    regex: Optional[re.Pattern]
    present: Optional[bool]

    def accepts(self, value: Optional[str]) -> bool:
        if self.present is not None:
            return (value is not None) is self.present
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        return self.regex.fullmatch(value) is not None  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """One route ready to match: its conditions compiled, its config kept for the actions."""

    index: int
    name: str
    conf: Route
    path_kind: int
    path_value: str
    path_regex: Optional[re.Pattern]
    methods: frozenset
    headers: tuple
    query: tuple
    listeners: frozenset

    def matches(self, method: str, path: str, headers: Any, query: Optional[dict]) -> Optional[Mapping[str, Any]]:
        """The captures (read-only; empty without a regex) if the request matches, else None."""
        kind = self.path_kind
        captures: Mapping[str, Any] = NO_CAPTURES
        if kind == _PREFIX:
            if not path.startswith(self.path_value):
                return None
        elif kind == _EXACT:
            if path != self.path_value:
                return None
        elif kind == _REGEX:
            m = self.path_regex.fullmatch(path)  # type: ignore[union-attr]
            if m is None:
                return None
            captures = m.groupdict()
        if self.methods and method not in self.methods:
            return None
        for test in self.headers:
            if not test.accepts(headers.get(test.name)):
                return None
        if self.query:
            for test in self.query:
                if not test.accepts(query.get(test.name) if query else None):
                    return None
        return captures

    def path_rank(self) -> tuple:
        if self.path_kind == _PREFIX:
            return (_PREFIX, -len(self.path_value))
        return (self.path_kind, 0)

    def describe_match(self) -> str:
        if self.path_kind == _EXACT:
            text = f"= {self.path_value}"
        elif self.path_kind == _PREFIX:
            text = f"{self.path_value}*"
        elif self.path_kind == _REGEX:
            text = f"~ {self.path_value}"
        else:
            text = "*"
        if self.methods:
            text += f" [{','.join(sorted(self.methods))}]"
        extra = [f"header {t.name}" for t in self.headers] + [f"query {t.name}" for t in self.query]
        if extra:
            text += f" ({', '.join(extra)})"
        return text


class RouteMatch(NamedTuple):
    """The route a request matched and its path captures (a plain tuple: one is
    made per request)."""

    route: CompiledRoute
    captures: Mapping[str, Any]


def compile_route(index: int, route: Route) -> CompiledRoute:
    path = route.match.path
    if path is None:
        kind, value, regex = _ANY_PATH, "", None
    elif path.exact is not None:
        kind, value, regex = _EXACT, path.exact, None
    elif path.prefix is not None:
        kind, value, regex = _PREFIX, path.prefix, None
    else:
        kind, value, regex = _REGEX, path.regex, re.compile(path.regex)  # type: ignore[arg-type]
    headers = tuple(_ValueTest(h.name.lower(), h.exact, re.compile(h.regex) if h.regex else None, h.present)
                    for h in route.match.headers)
    query = tuple(_ValueTest(q.name, q.exact, re.compile(q.regex) if q.regex else None, q.present)
                  for q in route.match.query)
    return CompiledRoute(index, route.name or f"routes[{index}]", route, kind, value or "", regex,
                         frozenset(route.match.methods), headers, query, frozenset(route.listeners))


@dataclass(frozen=True)
class _Table:
    exact: dict          # host -> tuple[(host_rank, CompiledRoute)]
    wildcard: dict       # ".suffix" -> tuple
    any: tuple


class Router:
    """Every listener's route table. :meth:`find` is the per-request entry point."""

    def __init__(self, routes: Iterable[Route], listeners: Iterable[str]) -> None:
        compiled = [compile_route(i, r) for i, r in enumerate(routes)]
        self.routes: tuple[CompiledRoute, ...] = tuple(compiled)
        self._tables = {name: self._build([r for r in compiled if not r.listeners or name in r.listeners])
                        for name in listeners}

    @staticmethod
    def _order(entries: list) -> tuple:
        # entries: (host_rank, suffix_len, route)
        def key(entry):
            host_rank, suffix_len, route = entry
            conditions = (1 if route.methods else 0) + len(route.headers) + len(route.query)
            return (-route.conf.priority, host_rank, -suffix_len, route.path_rank(), -conditions, route.index)

        return tuple(route for _, _, route in sorted(entries, key=key))

    def _build(self, routes: list[CompiledRoute]) -> _Table:
        exact: dict[str, list] = {}
        wild: dict[str, list] = {}
        anyhost: list = []
        for r in routes:
            if not r.conf.match.hosts:
                anyhost.append((_HOST_ANY, 0, r))
            for h in r.conf.match.hosts:
                h = normalize_host(h)
                if h.startswith("*."):
                    wild.setdefault(h[1:], []).append((_HOST_WILDCARD, len(h) - 1, r))
                else:
                    exact.setdefault(h, []).append((_HOST_EXACT, len(h), r))

        def wildcards_for(name: str) -> list:
            # every wildcard suffix that `name` ends with (a suffix of itself excluded)
            return [e for suffix, es in wild.items() if name.endswith(suffix) and name != suffix for e in es]

        exact_table = {h: self._order(es + wildcards_for(h) + anyhost) for h, es in exact.items()}
        wild_table = {s: self._order([e for t, es in wild.items() if s.endswith(t) for e in es] + anyhost)
                      for s in wild}
        return _Table(exact_table, wild_table, self._order(anyhost))

    def candidates(self, listener: str, host: str) -> tuple[CompiledRoute, ...]:
        """The routes that may apply to ``host`` on ``listener``, in precedence order."""
        table = self._tables[listener]
        found = table.exact.get(host)
        if found is not None:
            return found
        if table.wildcard:
            i = host.find(".")
            while i >= 0:
                found = table.wildcard.get(host[i:])
                if found is not None:
                    return found
                i = host.find(".", i + 1)
        return table.any

    def find(self, listener: str, host: str, method: str, path: str, headers: Any,
             query: Optional[str]) -> Optional[RouteMatch]:
        """The first route that matches, or None. ``host`` is already normalized;
        ``query`` is the raw query string, parsed only if a candidate tests it."""
        params: Optional[dict] = None
        for route in self.candidates(listener, host):
            if route.query and params is None:
                params = dict(parse_qsl(query or "", keep_blank_values=True))
            captures = route.matches(method, path, headers, params)
            if captures is not None:
                return RouteMatch(route, captures)
        return None

    def table(self, listener: str) -> list[tuple[str, tuple[CompiledRoute, ...]]]:
        """``[(host, routes in order)]`` for printing: exact hosts, wildcards, then ``*``."""
        t = self._tables[listener]
        rows = [(h, rs) for h, rs in sorted(t.exact.items())]
        rows += [(f"*{s}", t.wildcard[s]) for s in sorted(t.wildcard, key=lambda s: (-len(s), s))]
        rows.append(("*", t.any))
        return rows
