"""The public surface: every advertised name imports, and the docs' first example's names exist."""

import importlib

import propylon


def test_every_public_name_imports():
    for name in propylon.__all__:
        assert getattr(propylon, name) is not None, name


def test_public_names_come_from_their_layer():
    # A name is exported from exactly the module the table says, so a move breaks loudly.
    for name, module in propylon._WHERE.items():
        assert getattr(importlib.import_module(module), name) is getattr(propylon, name)


def test_design_quick_start_names():
    from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service  # noqa: F401
