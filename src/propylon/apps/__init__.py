"""What listening services run: the app contract, raw stream apps and HTTP apps."""

from .base import ListeningApp
from .http_app import HttpServerApp, ServeHttp
from .server_app import ServerApp

__all__ = ["ListeningApp", "ServerApp", "HttpServerApp", "ServeHttp"]
