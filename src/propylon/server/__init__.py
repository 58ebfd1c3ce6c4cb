"""The server process: options, configuration, lifecycle, signals, workers, upgrades."""

from ..shutdown import ShutdownWatch
from .configuration import ConfigError, ServerConf
from .options import Opt
from .server import Server

__all__ = ["Server", "ServerConf", "ConfigError", "Opt", "ShutdownWatch"]
