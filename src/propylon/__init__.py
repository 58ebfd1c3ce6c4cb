"""Propylon: fast, programmable HTTP proxies and API gateways in async Python."""

__version__ = "0.1.0"
