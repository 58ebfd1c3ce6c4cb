"""A refused connect, as when the origin is down and every request connects.

uvloop (the server's loop) builds the connection object before it connects; a
connect that fails must leave it to reference counting, not to the cycle
collector (whose passes grow with the garbage of each failed request).
"""

from __future__ import annotations

import asyncio
import gc

import pytest
import uvloop

from propylon import ErrorType, HttpPeer
from propylon.connectors.http import HttpConnector
from propylon.errors import Error
from propylon.protocols.http.header import RequestHeader
from propylon.protocols.http.v1.client import H1ClientConnection
from support import free_port


def test_a_refused_connect_is_connect_refused_and_leaves_no_cycle():
    peer = HttpPeer(("127.0.0.1", free_port()), False, "")

    async def main() -> list[Error]:
        connector = HttpConnector()
        errors = []
        for _ in range(20):
            with pytest.raises(Error) as caught:
                await connector.connect(peer)
            errors.append(caught.value)
        return errors

    gc.collect()
    # Connections other tests left open (on loops that are gone) may be collected
    # while this one runs: only the connections made here count.
    earlier = {id(o) for o in gc.get_objects() if type(o) is H1ClientConnection}
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        errors = uvloop.run(main())
        gc.collect()
        left = [o for o in gc.garbage if type(o) is H1ClientConnection and id(o) not in earlier]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert {e.etype for e in errors} == {ErrorType.CONNECT_REFUSED}
    assert left == []


def test_after_a_refusal_the_next_refusal_is_raised_at_once_and_a_revived_origin_is_reached():
    port = free_port()
    peer = HttpPeer(("127.0.0.1", port), False, "")

    async def main():
        connector = HttpConnector()
        with pytest.raises(Error) as first:
            await connector.connect(peer)
        assert first.value.etype is ErrorType.CONNECT_REFUSED
        # The address refused last time: the kernel's answer to a loopback connect is
        # known when connect() returns, so the refusal comes before any await.
        with pytest.raises(Error) as second:
            connector.connect(peer)
        assert second.value.etype is ErrorType.CONNECT_REFUSED
        assert "refused the connection" in str(second.value)

        # The origin comes back on the same port: the connect goes through and the
        # connection carries a request.
        got = []

        async def answer(reader, writer):
            got.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

        server = await asyncio.start_server(answer, "127.0.0.1", port)
        try:
            conn = await connector.connect(peer)
            assert isinstance(conn, H1ClientConnection)
            req = RequestHeader.build("GET", b"/back")
            req.append_header("Host", "origin")
            conn.send_request_header(req, False, False)
            resp = await conn.read_response_header()
            assert resp.status == 204
            assert got and got[0].startswith(b"GET /back HTTP/1.1\r\n")
            conn.close()
        finally:
            server.close()
            await server.wait_closed()
        # Once reached, the address is connected the usual way again; when it goes
        # away once more the refusal is still an Error, awaited as before.
        with pytest.raises(Error) as third:
            await connector.connect(peer)
        assert third.value.etype is ErrorType.CONNECT_REFUSED

    uvloop.run(main())
