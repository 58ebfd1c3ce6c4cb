"""Plugins: the :class:`Plugin` base, the built-ins, and building a route's chain.

A route's chain runs in a fixed order (see ``Plugins`` in the config models); it is
built once per snapshot. Problems (an unreadable key file, a Python plugin that does
not import) are returned with their config path, like validation errors.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Iterable, Optional

from ..config.load import ConfigProblem
from ..config.models import Route
from . import builtin, shared_limits, traffic
from .base import HOOKS, Plugin, defined_hooks

__all__ = ["Plugin", "HOOKS", "defined_hooks", "build_chain", "import_plugin"]


def import_plugin(spec: str, base_dir: Optional[str], reimport: set) -> type:
    """The class named ``module:Class``; the module is imported again (once per build)
    when its name is in ``reimport`` — how a reload picks up edited plugin code.
    The config file's directory is searched too."""
    module_name, _, class_name = spec.partition(":")
    if base_dir and base_dir not in sys.path and module_name not in sys.modules \
            and importlib.util.find_spec(module_name.partition(".")[0]) is None:
        sys.path.append(base_dir)  # only for a module found beside the file, not installed ones
    module = sys.modules.get(module_name)
    if module is not None and module_name in reimport:
        reimport.discard(module_name)
        module = importlib.reload(module)
    elif module is None:
        module = importlib.import_module(module_name)
        reimport.discard(module_name)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"module '{module_name}' has no '{class_name}'")
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise ValueError(f"{spec} is not a subclass of propylon.gateway.Plugin")
    return cls


def build_chain(index: int, route: Route, route_name: str, base_dir: Optional[str],
                reimport: set) -> tuple[list[Plugin], list[ConfigProblem]]:
    """The route's plugins in their fixed order, or the problems met building them."""
    p = route.plugins
    at = f"routes[{index}].plugins"
    chain: list[Plugin] = []
    problems: list[ConfigProblem] = []
    if p.rate_limit is not None and p.rate_limit.per.api_key and p.api_key is None:
        problems.append(ConfigProblem(f"{at}.rate_limit.per.api_key", "needs the api_key plugin on the route"))
    if p.inflight is not None and p.inflight.per.api_key and p.api_key is None:
        problems.append(ConfigProblem(f"{at}.inflight.per.api_key", "needs the api_key plugin on the route"))
    makers: Iterable = (
        ("request_id", lambda c: builtin.RequestId(c)),
        ("ip", lambda c: builtin.IpFilter(c)),
        ("cors", lambda c: builtin.Cors(c)),
        ("basic_auth", lambda c: builtin.BasicAuthPlugin(c)),
        ("bearer_auth", lambda c: builtin.BearerAuthPlugin(c)),
        ("api_key", lambda c: builtin.ApiKeyAuth(c)),
        ("jwt", lambda c: builtin.JwtAuth(c)),
        ("rate_limit", lambda c: builtin.RateLimit(c, route_name) if c.redis is None
         else shared_limits.RedisRateLimit(c, route_name)),
        ("inflight", lambda c: builtin.InflightLimit(c, route_name)),
        ("body_size", lambda c: builtin.BodySize(c)),
        ("traffic_split", lambda c: traffic.TrafficSplit(c)),
        ("mirror", lambda c: traffic.Mirror(c, route_name)),
        ("circuit_breaker", lambda c: traffic.CircuitBreakerPlugin(c, route_name)),
    )
    for key, make in makers:
        conf = getattr(p, key)
        if conf is None:
            continue
        try:
            chain.append(make(conf))
        except OSError as e:
            problems.append(ConfigProblem(f"{at}.{key}", f"cannot read {e.filename}: {e.strerror}"))
        except Exception as e:  # a bad key or address: report it, do not start
            problems.append(ConfigProblem(f"{at}.{key}", str(e)))
    if p.compression is not None:
        from .compress import Compression

        try:
            chain.append(Compression(p.compression))
        except ValueError as e:
            problems.append(ConfigProblem(f"{at}.compression", str(e)))
    if p.cache is not None:
        from .caching import CacheStatus, RouteCache

        try:
            # A split route's sides may answer differently: each caches its own.
            split = ((route.proxy.cluster, p.traffic_split.cluster)
                     if p.traffic_split is not None and route.proxy is not None else ())
            chain.append(RouteCache(p.cache, base_dir, split))
            if p.cache.status_header:
                chain.append(CacheStatus(p.cache.status_header))
        except OSError as e:
            problems.append(ConfigProblem(f"{at}.cache", f"cannot use {e.filename}: {e.strerror}"))
        except Exception as e:  # a bad storage setting: report it, do not start
            problems.append(ConfigProblem(f"{at}.cache", str(e)))
    for j, py in enumerate(p.python):
        try:
            cls = import_plugin(py.plugin, base_dir, reimport)
            chain.append(cls(dict(py.options)))
        except Exception as e:  # user code: whatever it raises is the reason it is refused
            problems.append(ConfigProblem(f"{at}.python[{j}].plugin", f"{type(e).__name__}: {e}"))
    return chain, problems
