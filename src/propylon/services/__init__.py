"""Services a server runs: listening services and background services."""

from .background import BackgroundService, GenBackgroundService, background_service
from .listeners import Listener, TcpSocketOptions
from .listening import ConnectionFilter, Service

__all__ = [
    "Service",
    "Listener",
    "TcpSocketOptions",
    "ConnectionFilter",
    "BackgroundService",
    "GenBackgroundService",
    "background_service",
]
