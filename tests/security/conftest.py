"""Fixtures for the security tests: the loopback edge server from ``edge_http_server``."""

import pytest
from edge_http_server import EdgeConfig, EdgeServer


@pytest.fixture
def edge_server():
    """A factory: ``edge_server(EdgeConfig(...))`` starts a server stopped after the test."""
    servers = []

    def start(cfg: "EdgeConfig | None" = None) -> EdgeServer:
        server = EdgeServer(cfg or EdgeConfig()).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
