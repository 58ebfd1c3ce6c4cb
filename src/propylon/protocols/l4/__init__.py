"""Layer-4 streams: the raw byte stream an accepted connection becomes."""

from .stream import DEFAULT_HIGH_WATER, Stream, StreamProtocol

__all__ = ["Stream", "StreamProtocol", "DEFAULT_HIGH_WATER"]
