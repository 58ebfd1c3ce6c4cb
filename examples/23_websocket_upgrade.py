"""Lesson 23: WebSocket upgrade – a long-lived tunnel through 127.0.0.1:6167.

    python -m propylon.lab &                    # WebSocket echo on 127.0.0.1:19091
    PROPYLON_LOG=info python examples/23_websocket_upgrade.py

The example drives itself, as the seed's did: a small client thread connects to
``ws://127.0.0.1:6167/stamp`` once the proxy listens, sends three pings one
second apart over the same connection and logs the echoes::

    Proxy: Detected Upgrade Header: websocket
    Client: Connected! Starting message loop...
    Client: Received 'Echo [11:00:19]: Ping #1'
    ...
    Client: Test Complete. Closing connection.

Set ``WS_DEMO_CLIENT=0`` to run only the proxy (then use any WebSocket client).

The handshake is an ordinary ``GET`` with ``Connection: Upgrade`` and
``Upgrade: websocket``; Propylon keeps those hop-by-hop headers for an upgrade
request, and when the upstream answers ``101 Switching Protocols`` both sides
stop speaking HTTP and the proxy just relays bytes.

Timeouts are the trap: an HTTP-minded read timeout (say 60 s) would cut a chat
socket that is quiet for a minute. For a tunnel the peer's ``read_timeout`` is
its idle timeout, so here it and ``write_timeout`` are None (no limit); only the
TCP connect is bounded.
"""

import logging
import os
import socket
import threading
import time

from websockets.sync.client import connect

from propylon import HttpPeer, PeerOptions, ProxyHttp, Server, http_proxy_service

log = logging.getLogger("websocket_upgrade")

ECHO_SERVER = ("127.0.0.1", 19091)  # the lab's WebSocket echo
LISTEN = ("127.0.0.1", 6167)


class WebSocketProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        options = PeerOptions(
            read_timeout=None,        # idle WebSockets must not be cut
            write_timeout=None,
            connection_timeout=5.0,   # but an unreachable upstream fails fast
        )
        return HttpPeer(ECHO_SERVER, tls=False, sni="", options=options)

    async def upstream_request_filter(self, session, upstream_request, ctx):
        # Connection/Upgrade travel on by themselves; this is only for the log.
        upgrade = upstream_request.get_header("Upgrade")
        if upgrade is not None:
            log.info("Proxy: Detected Upgrade Header: %s", upgrade)


def run_test_client() -> None:
    """Three pings over one connection, logged; runs in its own thread."""
    deadline = time.monotonic() + 10
    while True:  # wait for the proxy to listen
        try:
            socket.create_connection(LISTEN, timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                log.error("Client: proxy never started listening")
                return
            time.sleep(0.1)

    url = f"ws://{LISTEN[0]}:{LISTEN[1]}/stamp"
    log.info("Client: Connection to Proxy at %s", url)
    try:
        # proxy=None: never route through an HTTP proxy from the environment.
        with connect(url, proxy=None, open_timeout=5) as ws:
            log.info("Client: Connected! Starting message loop...")
            for i in range(1, 4):
                msg = f"Ping #{i}"
                log.info("Client: Sending '%s'", msg)
                ws.send(msg)
                log.info("Client: Received '%s'", ws.recv(timeout=5))
                time.sleep(1)
            log.info("Client: Test Complete. Closing connection.")
    except Exception as exc:  # a demo: report, do not take the proxy down
        log.error("Client: failed: %r", exc)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, WebSocketProxy())
    proxy.add_tcp(f"{LISTEN[0]}:{LISTEN[1]}")

    if os.environ.get("WS_DEMO_CLIENT", "1") != "0":
        threading.Thread(target=run_test_client, name="ws-demo-client", daemon=True).start()

    log.info("WebSocket Proxy running on %s:%d", *LISTEN)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
