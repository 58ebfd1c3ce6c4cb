"""The one exception the HTTP/2 codecs raise (shared by the pure and native ones)."""

__all__ = ["CodecError"]


class CodecError(Exception):
    """A stream can no longer send, or the peer broke the protocol for the connection.

    ``abuse`` is True when the codec's own flood limits ended the connection (the
    native codec: nghttp2's caps on queued replies, SETTINGS entries and
    CONTINUATION frames), so the connection answers as its guards do.
    """

    def __init__(self, message: str, abuse: bool = False) -> None:
        super().__init__(message)
        self.abuse = abuse
