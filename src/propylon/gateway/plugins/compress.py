"""The ``compression`` plugin: a route's responses compressed with gzip, brotli or zstd.

The framework's response compression does the work (negotiation on
``Accept-Encoding``, streaming encoders, ``Vary`` and ``ETag`` handling); the plugin
hands each request of its route the options built once from the configuration, so
responses from the cache are compressed the same way as fresh ones.
"""

from __future__ import annotations

from ...protocols.http.compression import CompressionOptions
from ..config import models as m
from .base import Plugin

__all__ = ["Compression", "compression_options"]

_LEVEL_FIELD = {"gzip": "gzip_level", "br": "brotli_level", "zstd": "zstd_level"}


def compression_options(conf: m.CompressionPlugin) -> CompressionOptions:
    """The options ``conf`` describes: its codings at its level (capped per coding)."""
    levels = CompressionOptions.enable(conf.level)
    return CompressionOptions(**{field: getattr(levels, field) if coding in conf.codings else 0
                                 for coding, field in _LEVEL_FIELD.items()},
                              min_length=conf.min_size, types=tuple(conf.types), prefer=tuple(conf.codings))


class Compression(Plugin):
    """Sets the route's compression on each of its requests."""

    def __init__(self, conf: m.CompressionPlugin) -> None:
        super().__init__()
        self.compression = compression_options(conf)

    async def request_filter(self, session, ctx) -> bool:
        session.compression = self.compression
        return False
