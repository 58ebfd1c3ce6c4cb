"""Logging set-up for server processes: level from ``PROPYLON_LOG``, to stderr."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["setup_logging", "LOG_ENV"]

LOG_ENV = "PROPYLON_LOG"
_FORMAT = "%(asctime)s %(levelname)-5s %(name)s[%(process)d]: %(message)s"
_ALIASES = {"warn": "WARNING", "trace": "DEBUG", "fatal": "CRITICAL"}


def setup_logging(default: int = logging.WARNING) -> None:
    """Send log records to stderr with time, level, logger name and pid.

    The level comes from ``PROPYLON_LOG`` (``debug``, ``info``, ``warning``,
    ``error``; default ``warning``). If the program already configured the root
    logger, only an explicit ``PROPYLON_LOG`` changes its level.
    """
    raw = os.environ.get(LOG_ENV, "").strip()
    level = default
    bad = False
    if raw:
        name = _ALIASES.get(raw.lower(), raw.upper())
        value = logging.getLevelName(name)
        if isinstance(value, int):
            level = value
        else:
            bad = True
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
        root.setLevel(level)
    elif raw and not bad:
        root.setLevel(level)
    if bad:
        logging.getLogger(__name__).warning("%s=%r is not a log level; using %s",
                                            LOG_ENV, raw, logging.getLevelName(level))
