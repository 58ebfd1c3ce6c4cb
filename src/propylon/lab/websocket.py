"""WebSocket echo upstream on 127.0.0.1:19091.

Text and binary messages come back unchanged; pings are answered by the library.
Two extras help proxy tests: the text message ``__handshake__`` is answered with a
JSON document of the opening request (path and headers as received), and ``/stamp``
(the path) prefixes echoes with ``Echo [HH:MM:SS]: `` as the seed lab's server did.
"""

from __future__ import annotations

import json
import time
from typing import Optional

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ._base import Endpoint, Member, MemberConfig

__all__ = ["WebSocketMember"]


class WebSocketMember(Member):
    """WebSocket echo on 127.0.0.1:19091."""

    name = "websocket"
    default_port = 19091

    def __init__(self, config: MemberConfig) -> None:
        super().__init__(config)
        self._server: Optional[Server] = None

    async def start(self) -> list[Endpoint]:
        port = self.config.port(0, self.default_port)
        # compression off: frames on the wire stay readable when a test inspects them
        self._server = await serve(self._echo, self.config.host, port, compression=None,
                                   server_header="propylon-lab")
        bound = next(iter(self._server.sockets)).getsockname()[1]
        self.endpoints = [Endpoint(self.name, "ws", self.config.host, bound)]
        return self.endpoints

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @staticmethod
    async def _echo(ws: ServerConnection) -> None:
        request = ws.request
        path = request.path if request is not None else "/"
        stamp = path.split("?", 1)[0] == "/stamp"
        try:
            async for message in ws:
                if message == "__handshake__" and request is not None:
                    await ws.send(json.dumps({"path": request.path,
                                              "headers": [[k, v] for k, v in request.headers.raw_items()]}))
                elif stamp and isinstance(message, str):
                    await ws.send(f"Echo [{time.strftime('%H:%M:%S')}]: {message}")
                else:
                    await ws.send(message)
        except ConnectionClosed:
            pass
