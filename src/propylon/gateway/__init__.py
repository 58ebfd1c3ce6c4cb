"""The ready-to-run gateway: ``propylon run -c gateway.yaml`` (and, with no config, the demo).

* :mod:`propylon.gateway.config` — the typed configuration, its JSON Schema and errors with paths;
* :mod:`propylon.gateway.router` — the compiled route table;
* :mod:`propylon.gateway.plugins` — the built-in plugins and the :class:`Plugin` base;
* :mod:`propylon.gateway.runtime` — snapshots, the atomic swap and reload;
* :mod:`propylon.gateway.proxy` — the ``ProxyHttp`` that serves a snapshot.
"""

from .plugins.base import Plugin

__all__ = ["Plugin"]
