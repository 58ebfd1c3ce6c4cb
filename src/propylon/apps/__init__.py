"""What listening services run: the app contract and raw stream apps."""

from .base import ListeningApp
from .server_app import ServerApp

__all__ = ["ListeningApp", "ServerApp"]
