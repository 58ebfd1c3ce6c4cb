"""Connect timeouts of the connector, against the lab's blackhole (its connects hang).

The connects in flight share one timer armed for the earliest deadline: a short
timeout must still fire while a longer one is pending, and a task cancelled by
someone else stays cancelled rather than becoming a timeout.
"""

from __future__ import annotations

import asyncio

import pytest

from propylon import ErrorType, HttpPeer, PeerOptions, TcpKeepalive
from propylon.connectors.http import HttpConnector
from propylon.errors import Error

# Plain TCP to an IP (the loop connects) and a socket with options of ours (connected here).
PATHS = {"plain": {}, "own socket": {"tcp_keepalive": TcpKeepalive(idle=30, interval=5, count=3)}}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_short_connect_timeout_fires_while_a_longer_one_is_pending(lab, path):
    def peer(timeout: float) -> HttpPeer:
        return HttpPeer(lab.address("blackhole"), False, "", PeerOptions(connection_timeout=timeout, **PATHS[path]))

    async def main():
        connector = HttpConnector()
        slow = asyncio.create_task(connector.connect(peer(30)))
        await asyncio.sleep(0.05)  # the long deadline is the one armed first
        with pytest.raises(Error) as caught:
            await connector.connect(peer(0.2))
        still_waiting = not slow.done()
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        return caught.value, still_waiting

    err, still_waiting = asyncio.run(main())
    assert err.etype == ErrorType.CONNECT_TIMEDOUT
    assert still_waiting  # the other connect kept its own, longer deadline
