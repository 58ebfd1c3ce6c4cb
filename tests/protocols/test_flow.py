"""FlowControl on a real loopback connection: a writer waits while the peer reads
nothing, the wait ends on timeout or when the connection goes, reading pauses above
the high mark and resumes at the low one."""

from __future__ import annotations

import asyncio
import socket

import uvloop

from propylon.protocols.flow import DRAIN_LOST, DRAIN_TIMED_OUT, DRAINED, FlowControl, wake


class Owner(asyncio.Protocol):
    """The smallest owner: forwards the transport's callbacks to its FlowControl."""

    def __init__(self) -> None:
        self.flow: FlowControl | None = None
        self.received = 0

    def connection_made(self, transport) -> None:
        transport.set_write_buffer_limits(high=64 * 1024)
        self.flow = FlowControl(transport, high=8, low=2)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def connection_lost(self, exc) -> None:
        self.flow.connection_lost()


async def stalled_pair():
    """Our protocol connected to a peer socket that reads nothing yet."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    connecting = loop.create_connection(Owner, "127.0.0.1", listener.getsockname()[1])
    (transport, owner), (peer, _) = await asyncio.gather(connecting, loop.sock_accept(listener))
    listener.close()
    peer.setblocking(False)
    return transport, owner, peer


async def fill(transport, owner: Owner) -> None:
    for _ in range(10_000):  # bounded: loopback buffers hold a few MiB at most
        if owner.flow.write_paused:
            return
        transport.write(b"x" * 65536)
        await asyncio.sleep(0)
    raise AssertionError("the transport never paused writing")


def run(coro):
    return uvloop.run(coro)


def test_drain_times_out_while_the_peer_reads_nothing_then_drains_when_it_reads():
    async def main():
        transport, owner, peer = await stalled_pair()
        await fill(transport, owner)
        assert await owner.flow.drain(0.2) == DRAIN_TIMED_OUT
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(owner.flow.drain(None))
        for _ in range(100_000):  # bounded: what fill() wrote, a chunk at a time
            if waiting.done():
                break
            await loop.sock_recv(peer, 1 << 20)
        assert await waiting == DRAINED
        assert not owner.flow.write_paused
        transport.close()
        peer.close()
    run(main())


def test_a_lost_connection_wakes_the_drain_waiter():
    async def main():
        transport, owner, peer = await stalled_pair()
        await fill(transport, owner)
        waiting = asyncio.ensure_future(owner.flow.drain(None))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        transport.abort()
        assert await asyncio.wait_for(waiting, 5) == DRAIN_LOST
        assert await owner.flow.drain(1) == DRAIN_LOST  # and any later wait returns at once
        peer.close()
    run(main())


def test_reading_pauses_above_the_high_mark_and_resumes_at_the_low_one():
    async def main():
        transport, owner, peer = await stalled_pair()
        flow = owner.flow
        flow.received(8)
        assert not flow.read_paused
        flow.received(9)
        assert flow.read_paused and not transport.is_reading()
        flow.consumed(3)
        assert flow.read_paused
        flow.consumed(2)
        assert not flow.read_paused and transport.is_reading()
        transport.close()
        peer.close()
    run(main())


def test_wake_completes_a_waiter_once():
    async def main():
        fut = asyncio.get_running_loop().create_future()
        wake(fut, 1)
        wake(fut, 2)  # already done: ignored
        wake(None)
        assert fut.result() == 1
    run(main())
