"""A refused connect, as when the origin is down and every request connects.

uvloop (the server's loop) builds the connection object before it connects; a
connect that fails must leave it to reference counting, not to the cycle
collector (whose passes grow with the garbage of each failed request).
"""

from __future__ import annotations

import gc

import pytest
import uvloop

from propylon import ErrorType, HttpPeer
from propylon.connectors.http import HttpConnector
from propylon.errors import Error
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
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        errors = uvloop.run(main())
        gc.collect()
        left = [o for o in gc.garbage if type(o) is H1ClientConnection]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert {e.etype for e in errors} == {ErrorType.CONNECT_REFUSED}
    assert left == []
