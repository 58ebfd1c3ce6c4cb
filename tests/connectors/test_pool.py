"""The connector's HTTP/1 pool against a loopback origin: reuse by peer, idle
eviction, the origin closing an idle connection, the size bound."""

from __future__ import annotations

import asyncio
from typing import Optional

from propylon import HttpPeer, PeerOptions
from propylon.connectors.http import HttpConnector
from propylon.connectors.pool import IdleGroup
from propylon.protocols.http.header import RequestHeader

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#: Enough passes of the loop for a close or an EOF to be noticed on loopback.
PASSES = 200


class Origin:
    """An HTTP/1.1 origin on 127.0.0.1 answering every request with ``reply``;
    ``close_idle_after`` closes a connection that many seconds after it answered."""

    def __init__(self, reply: bytes = OK, close_idle_after: Optional[float] = None) -> None:
        self.reply = reply
        self.close_idle_after = close_idle_after
        self.connections = 0
        self.closed_by_peer = 0
        self.server: Optional[asyncio.AbstractServer] = None
        self.port = 0

    async def __aenter__(self) -> "Origin":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_peer += 1
                    return
                writer.write(self.reply)
                await writer.drain()
                if self.close_idle_after is not None:
                    await asyncio.sleep(self.close_idle_after)
                    return
        finally:
            writer.close()

    def peer(self, sni: str = "", options: Optional[PeerOptions] = None) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), False, sni, options)


async def fetch(conn) -> bytes:
    """One GET on ``conn``; the body."""
    req = RequestHeader.build(b"GET", b"/")
    req.append_header(b"Host", b"origin.test")
    conn.send_request_header(req, False, True)
    await conn.read_response_header()
    body = b""
    while (piece := await conn.read_body()) is not None:
        body += piece
    return body


async def until(condition) -> bool:
    for _ in range(PASSES):
        if condition():
            return True
        await asyncio.sleep(0.005)
    return condition()


async def exchange(connector: HttpConnector, peer: HttpPeer):
    """Take a pooled connection or open one, GET, release; the connection."""
    conn = connector.reuse(peer)
    if conn is None:
        conn, _ = await connector.get(peer)
    assert await fetch(conn) == b"ok"
    connector.release(peer, conn)
    return conn


def test_a_released_connection_serves_the_next_request_to_the_same_peer():
    async def main():
        async with Origin() as origin:
            connector = HttpConnector()
            first = await exchange(connector, origin.peer())
            second = await exchange(connector, origin.peer())  # a new HttpPeer, same identity
            other = connector.reuse(origin.peer(sni="other.test"))
            connector.close()
            return first is second, other, origin.connections

    same, other, connections = asyncio.run(main())
    assert same and other is None and connections == 1


def test_peers_that_differ_in_timeouts_only_share_connections():
    async def main():
        async with Origin() as origin:
            connector = HttpConnector()
            await exchange(connector, origin.peer(options=PeerOptions(read_timeout=5)))
            await exchange(connector, origin.peer(options=PeerOptions(read_timeout=9, connection_timeout=1)))
            connector.close()
            return origin.connections

    assert asyncio.run(main()) == 1


def test_idle_timeout_evicts_and_closes_the_connection():
    async def main():
        async with Origin() as origin:
            connector = HttpConnector()
            peer = origin.peer(options=PeerOptions(idle_timeout=0.05))
            await exchange(connector, peer)
            assert len(connector.pool) == 1
            evicted = await until(lambda: len(connector.pool) == 0)
            seen = await until(lambda: origin.closed_by_peer == 1)
            reused = connector.reuse(peer)
            connector.close()
            return evicted, seen, reused

    evicted, seen, reused = asyncio.run(main())
    assert evicted and seen and reused is None


def test_an_idle_connection_the_origin_closes_leaves_the_pool():
    async def main():
        async with Origin(close_idle_after=0.01) as origin:
            connector = HttpConnector()
            conn = await exchange(connector, origin.peer())
            gone = await until(lambda: len(connector.pool) == 0)
            reused = connector.reuse(origin.peer())
            again = await exchange(connector, origin.peer())
            connector.close()
            return gone, reused, again is not conn, origin.connections

    gone, reused, fresh, connections = asyncio.run(main())
    assert gone and reused is None and fresh and connections == 2


def test_a_response_with_connection_close_is_not_pooled():
    async def main():
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        async with Origin(reply) as origin:
            connector = HttpConnector()
            conn = await exchange(connector, origin.peer())
            return len(connector.pool), conn.closed

    assert asyncio.run(main()) == (0, True)


def test_the_pool_keeps_the_most_recently_released_connections():
    async def main():
        async with Origin() as origin:
            connector = HttpConnector(pool_size=2)
            peers = [origin.peer(sni=f"s{i}.test") for i in range(3)]
            conns = []
            for peer in peers:
                conn, _ = await connector.get(peer)
                assert await fetch(conn) == b"ok"
                conns.append(conn)
            for peer, conn in zip(peers, conns):
                connector.release(peer, conn)
            kept = [connector.reuse(p) is c for p, c in zip(peers, conns)]
            connector.close()
            return kept, conns[0].closed

    kept, oldest_closed = asyncio.run(main())
    assert kept == [False, True, True] and oldest_closed


def test_a_pool_of_size_zero_keeps_nothing():
    async def main():
        async with Origin() as origin:
            connector = HttpConnector(pool_size=0)
            conn = await exchange(connector, origin.peer())
            return len(connector.pool), conn.closed, origin.connections

    assert asyncio.run(main()) == (0, True, 1)


def test_an_idle_group_keeps_at_most_its_size_across_its_peers():
    async def main():
        async with Origin() as grouped, Origin() as other:
            connector = HttpConnector()
            group = IdleGroup(2)
            # Two peers of one group (nginx's keepalive counts a whole upstream block).
            peers = [grouped.peer(sni=f"s{i % 2}.test") for i in range(5)]
            for peer in peers:
                peer.idle_group = group
            conns = [(await connector.get(peer))[0] for peer in peers]  # 5 open at once
            for conn in conns:
                assert await fetch(conn) == b"ok"
            for peer, conn in zip(peers, conns):
                connector.release(peer, conn)
            kept = connector.pool.idle_in(group)
            closed = [c.closed for c in conns]
            # A peer outside the group is not limited by it.
            free = [(await connector.get(other.peer()))[0] for _ in range(3)]
            for conn in free:
                assert await fetch(conn) == b"ok"
                connector.release(other.peer(), conn)
            total = len(connector.pool)
            # Taking a connection out makes room for the next release.
            taken = connector.reuse(peers[4])
            after_take = connector.pool.idle_in(group)
            connector.release(peers[4], taken)
            seen = await until(lambda: grouped.closed_by_peer == 3)
            connector.close()
            return kept, closed, total, taken is conns[4], after_take, connector.pool.idle_in(group), seen

    kept, closed, total, newest, after_take, emptied, seen = asyncio.run(main())
    # The three least recently released went, and the origin saw them close.
    assert kept == 2 and closed == [True, True, True, False, False] and seen
    assert total == 5 and newest and after_take == 1 and emptied == 0


def test_an_idle_group_timer_and_size_zero():
    async def main():
        async with Origin() as origin:
            connector = HttpConnector()
            peer = origin.peer(options=PeerOptions(idle_timeout=0.05))
            peer.idle_group = IdleGroup(1)
            await exchange(connector, peer)
            assert connector.pool.idle_in(peer.idle_group) == 1
            expired = await until(lambda: connector.pool.idle_in(peer.idle_group) == 0 and len(connector.pool) == 0)
            none = origin.peer()
            none.idle_group = IdleGroup(0)
            conn = await exchange(connector, none)
            connector.close()
            return expired, conn.closed, len(connector.pool)

    assert asyncio.run(main()) == (True, True, 0)
