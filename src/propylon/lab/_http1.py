"""A small HTTP/1.1 server on asyncio streams and httptools, for lab upstreams.

It keeps connections alive, accepts pipelined and chunked requests, answers
``Expect: 100-continue``, streams large response bodies with back-pressure, and
records each request exactly as it arrived (see :class:`LabRequest`). It is a test
double, not a production server: malformed input gets a 400 and a closed connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Optional

import httptools

from ._messages import (BODY_KEEP, Handler, LabRequest, LabResponse, TlsInfo, http_date,
                        reason, status_has_body)

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024


class _Collector:
    """httptools callback target: turns parser events into LabRequest objects."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[tuple[LabRequest, bool]] = []
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._trailers: list[tuple[bytes, bytes]] = []
        self._in_trailers = False
        self._body = bytearray()
        self._length = 0
        self._sha = hashlib.sha256()

    # -- parser callbacks ------------------------------------------------------
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        (self._trailers if self._in_trailers else self._headers).append((name, value))

    def on_headers_complete(self) -> None:
        self._in_trailers = True
        for k, v in self._headers:
            # curl waits up to a second for this before sending a large body
            if k.lower() == b"expect" and v.lower() == b"100-continue":
                self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._length += len(body)
        self._sha.update(body)
        room = BODY_KEEP - len(self._body)
        if room > 0:
            self._body += body[:room]

    def on_message_complete(self) -> None:
        chunked = any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower()
                      for k, v in self._headers)
        req = LabRequest(
            method=self.parser.get_method().decode("latin-1"),
            target=self._url.decode("latin-1"),
            protocol="HTTP/" + self.parser.get_http_version(),
            headers=self._headers,
            body=bytes(self._body),
            body_length=self._length,
            body_sha256=self._sha.hexdigest(),
            chunked=chunked,
            trailers=self._trailers,
        )
        self.done.append((req, self.parser.should_keep_alive()))


async def serve_http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      handler: Handler, tls: Optional[TlsInfo] = None,
                      initial: bytes = b"") -> None:
    """Serve HTTP/1.x requests on one connection until either side closes it."""
    client = peer_name(writer)
    col = _Collector(writer)
    served = 0
    try:
        data = initial or await reader.read(_READ_SIZE)
        while data:
            upgrade = False
            try:
                col.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                upgrade = True  # we never switch protocols: answer, then close
            except httptools.HttpParserError as exc:
                log.debug("bad request from %s: %s", client, exc)
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n"
                             b"Connection: close\r\n\r\nBad Request")
                await writer.drain()
                return
            while col.done:
                req, keep_alive = col.done.pop(0)
                served += 1
                req.client, req.connection_requests, req.tls = client, served, tls
                keep_alive = keep_alive and not upgrade
                if not await _respond(writer, req, await handler(req), keep_alive):
                    return
            if upgrade:
                return
            data = await reader.read(_READ_SIZE)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        close_writer(writer)


async def _respond(writer: asyncio.StreamWriter, req: LabRequest, resp: LabResponse,
                   keep_alive: bool) -> bool:
    """Write one response; return whether the connection stays open."""
    if resp.drop:
        return False
    keep_alive = keep_alive and not resp.close
    with_body = status_has_body(resp.status, req.method)
    version = "HTTP/1.0" if req.protocol == "HTTP/1.0" else "HTTP/1.1"
    lines = [f"{version} {resp.status} {reason(resp.status)}"]
    lines += [f"{k}: {v}" for k, v in resp.headers]
    if not resp.has_header("date"):
        lines.append(f"Date: {http_date()}")
    chunked = False
    static = resp.body if isinstance(resp.body, bytes) else None
    if 100 <= resp.status < 200 or resp.status in (204, 304):
        pass  # no body and no length: a 304's length would have to match the 200's
    elif static is not None:
        if not resp.has_header("content-length"):
            lines.append(f"Content-Length: {len(static)}")
    elif resp.length is not None:
        lines.append(f"Content-Length: {resp.length}")
    elif version == "HTTP/1.1":
        chunked = True
        lines.append("Transfer-Encoding: chunked")
    else:
        keep_alive = False  # an HTTP/1.0 body of unknown length ends at close
    if not keep_alive:
        lines.append("Connection: close")
    elif version == "HTTP/1.0":
        lines.append("Connection: keep-alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if static is not None:
        writer.write(head + static if with_body else head)
        await writer.drain()
        return keep_alive
    writer.write(head)
    if with_body:
        async for chunk in resp.body:  # type: ignore[union-attr]
            if not chunk:
                continue
            if chunked:
                writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            else:
                writer.write(chunk)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
    await writer.drain()
    return keep_alive


def peer_name(writer: asyncio.StreamWriter) -> str:
    """``host:port`` of the connection's peer (``unix`` for a Unix socket)."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = peer[0]
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return "unix" if not peer else str(peer)


def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a connection, ignoring a peer that is already gone."""
    try:
        writer.close()
    except (ConnectionError, RuntimeError):
        pass
