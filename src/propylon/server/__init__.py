"""The server process: options, configuration, lifecycle, signals, workers, upgrades.

Names are loaded on first use: ``propylon.apps.base`` imports the shutdown watch
from this package, and the server in turn imports the services, so importing
everything eagerly here would be circular.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Server", "ServerConf", "ConfigError", "Opt", "ShutdownWatch"]

_WHERE = {
    "Server": ".server",
    "ServerConf": ".configuration",
    "ConfigError": ".configuration",
    "Opt": ".options",
    "ShutdownWatch": ".shutdown",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
