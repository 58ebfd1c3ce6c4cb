"""Things both sides of the HTTP/1 codec share: hop-by-hop rules, framing helpers,
flow-control marks."""

from __future__ import annotations

from ..header import HeaderMap, named_by_connection

# RFC 9110 7.6.1: fields that describe one connection and never travel further.
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
    )
)

# Read side: stop reading from a socket once this much body waits for the
# application, resume below the low mark. Write side uses the transport's limits.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
WRITE_HIGH_WATER = 256 * 1024

CHUNK_END = b"0\r\n\r\n"


def strip_hop_by_hop(headers: HeaderMap, keep_upgrade: bool = False) -> None:
    """Remove hop-by-hop fields, and the fields that ``Connection`` names, in place."""
    items = headers.fields
    named: set[bytes] = set()
    found = False
    for lower, _, value in items:
        if lower in HOP_BY_HOP:
            found = True
            if lower == b"connection":
                named |= named_by_connection(value)
    if not found:
        return
    drop = HOP_BY_HOP | named
    if keep_upgrade:
        drop = drop - {b"upgrade", b"connection"}
    # "TE: trailers" announces that the client takes trailers; gRPC needs it to
    # reach the origin, and HTTP/2 allows exactly this value through.
    items[:] = [it for it in items
                if it[0] not in drop or (it[0] == b"te" and it[2].strip().lower() == b"trailers")]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def last_chunk(trailers: HeaderMap | None) -> bytes:
    if not trailers:
        return CHUNK_END
    out = [b"0\r\n"]
    trailers.encode_into(out)
    out.append(b"\r\n")
    return b"".join(out)


def is_chunked_only(te: bytes) -> bool:
    """True when Transfer-Encoding is exactly ``chunked`` (case-insensitive)."""
    return te.strip().lower() == b"chunked"
