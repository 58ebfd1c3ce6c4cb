"""A small HTTP/2 server (h2c prior knowledge, or h2 after TLS ALPN) for lab upstreams.

Each stream's request is collected whole, handed to the same kind of handler as the
HTTP/1 server, and answered in its own task, so streams of one connection are served
concurrently. Response bodies respect the peer's flow-control windows.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Optional

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from ._http1 import close_writer, peer_name
from ._messages import (BODY_KEEP, Handler, LabRequest, LabResponse, TlsInfo, http_date,
                        status_has_body)

log = logging.getLogger(__name__)


class _Stream:
    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers
        self.trailers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.length = 0
        self.sha = hashlib.sha256()
        self.task: Optional[asyncio.Task[None]] = None


class _H2Server:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 handler: Handler, tls: Optional[TlsInfo]) -> None:
        self.reader, self.writer, self.handler, self.tls = reader, writer, handler, tls
        cfg = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.streams: dict[int, _Stream] = {}
        self.window_changed = asyncio.Event()
        self.client = peer_name(writer)
        self.served = 0

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    async def run(self, initial: bytes) -> None:
        self.conn.initiate_connection()
        self.flush()
        data = initial or await self.reader.read(65536)
        try:
            while data:
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    log.debug("h2 protocol error from %s: %s", self.client, exc)
                    self.flush()
                    return
                for ev in events:
                    if not self._on_event(ev):
                        self.flush()
                        return
                self.flush()
                await self.writer.drain()
                data = await self.reader.read(65536)
        except ConnectionError:
            pass
        finally:
            for st in self.streams.values():
                if st.task is not None:
                    st.task.cancel()
            close_writer(self.writer)

    def _wake_senders(self) -> None:
        self.window_changed.set()
        self.window_changed = asyncio.Event()

    def _on_event(self, ev: h2.events.Event) -> bool:
        if isinstance(ev, h2.events.RequestReceived):
            self.streams[ev.stream_id] = _Stream(list(ev.headers))
            if ev.stream_ended is not None:
                self._dispatch(ev.stream_id)
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.length += len(ev.data)
                st.sha.update(ev.data)
                room = BODY_KEEP - len(st.body)
                if room > 0:
                    st.body += ev.data[:room]
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_ended is not None:
                self._dispatch(ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.trailers = list(ev.headers)
            if ev.stream_ended is not None:
                self._dispatch(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.pop(ev.stream_id, None)
            if st is not None and st.task is not None:
                st.task.cancel()
            self._wake_senders()
        elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._wake_senders()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            return False
        return True

    def _dispatch(self, stream_id: int) -> None:
        st = self.streams[stream_id]
        self.served += 1
        hdr = dict((k, v) for k, v in st.headers if k.startswith(b":"))
        req = LabRequest(
            method=hdr.get(b":method", b"GET").decode("latin-1"),
            target=hdr.get(b":path", b"/").decode("latin-1"),
            protocol="HTTP/2",
            headers=st.headers,
            client=self.client,
            connection_requests=self.served,
            tls=self.tls,
            body=bytes(st.body),
            body_length=st.length,
            body_sha256=st.sha.hexdigest(),
            trailers=st.trailers,
        )
        st.task = asyncio.get_running_loop().create_task(self._answer(stream_id, req))

    async def _answer(self, stream_id: int, req: LabRequest) -> None:
        try:
            resp = await self.handler(req)
            await self._send(stream_id, req, resp)
        except asyncio.CancelledError:
            raise
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, ConnectionError):
            pass  # the client went away or reset the stream
        finally:
            self.streams.pop(stream_id, None)

    async def _send(self, stream_id: int, req: LabRequest, resp: LabResponse) -> None:
        if resp.drop:
            self.conn.reset_stream(stream_id)
            self.flush()
            return
        with_body = status_has_body(resp.status, req.method)
        headers = [(":status", str(resp.status))]
        hop = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"}
        headers += [(k.lower(), v) for k, v in resp.headers if k.lower() not in hop]
        if not resp.has_header("date"):
            headers.append(("date", http_date()))
        static = resp.body if isinstance(resp.body, bytes) else None
        if static is not None and not resp.has_header("content-length") and with_body:
            headers.append(("content-length", str(len(static))))
        elif static is None and resp.length is not None:
            headers.append(("content-length", str(resp.length)))
        no_more = not with_body and not resp.trailers
        self.conn.send_headers(stream_id, headers, end_stream=no_more)
        self.flush()
        if no_more:
            return
        if with_body:
            if static is not None:
                await self._send_data(stream_id, static)
            else:
                async for chunk in resp.body:  # type: ignore[union-attr]
                    await self._send_data(stream_id, chunk)
        if resp.trailers:
            self.conn.send_headers(stream_id, [(k.lower(), v) for k, v in resp.trailers],
                                   end_stream=True)
        else:
            self.conn.end_stream(stream_id)
        self.flush()

    async def _send_data(self, stream_id: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            window = self.conn.local_flow_control_window(stream_id)
            if window <= 0:
                await self.window_changed.wait()
                continue
            n = min(window, self.conn.max_outbound_frame_size, len(view))
            self.conn.send_data(stream_id, bytes(view[:n]))
            view = view[n:]
            self.flush()
            await self.writer.drain()


async def serve_h2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   handler: Handler, tls: Optional[TlsInfo] = None,
                   initial: bytes = b"") -> None:
    """Serve HTTP/2 streams on one connection until it closes."""
    await _H2Server(reader, writer, handler, tls).run(initial)
