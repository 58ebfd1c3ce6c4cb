"""The one exception the HTTP/2 codecs raise (shared by the pure and native ones)."""

__all__ = ["CodecError"]


class CodecError(Exception):
    """A stream can no longer send, or the peer broke the protocol for the connection."""
