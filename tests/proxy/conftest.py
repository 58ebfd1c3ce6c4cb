"""Fixtures for the engine tests (see proxy_support.py)."""

from proxy_support import loop_thread, start_proxy, upstream  # noqa: F401
