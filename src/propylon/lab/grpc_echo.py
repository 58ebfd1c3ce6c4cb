"""A real gRPC upstream: the standard health service and a small echo service.

Listens on 127.0.0.1:19000 (h2c) and 127.0.0.1:19001 (TLS, lab upstream
certificate, valid for ``grpc.propylon.test``). Services:

* ``grpc.health.v1.Health`` (``Check``/``Watch``): ``""`` and ``propylon.lab.Echo``
  report SERVING.
* ``propylon.lab.Echo`` with JSON messages (no protoc needed):

  - ``Unary``: ``{"message": str, "code"?: int, "details"?: str}`` ->
    ``{"message": str, "metadata": {...}, "peer": str}``; a non-zero ``code`` makes
    the call fail with that gRPC status. Sends trailing metadata ``x-lab-trailer: echo``.
  - ``ServerStream``: ``{"message": str, "count"?: int = 3, "interval_ms"?: int = 0}``
    -> ``count`` messages ``{"message": str, "index": i}``.

:func:`echo_unary` and :func:`echo_server_stream` make client callables for a channel.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent import futures
from typing import Any, Callable, Iterator, Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ._base import Endpoint, Member, MemberConfig

__all__ = ["GrpcMember", "ECHO_SERVICE", "echo_unary", "echo_server_stream"]

ECHO_SERVICE = "propylon.lab.Echo"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _loads(data: bytes) -> Any:
    return json.loads(data) if data else {}


def echo_unary(channel: grpc.Channel) -> Callable[..., Any]:
    """A callable for ``propylon.lab.Echo/Unary`` on ``channel`` (dict in, dict out)."""
    return channel.unary_unary(f"/{ECHO_SERVICE}/Unary", request_serializer=_dumps,
                               response_deserializer=_loads)


def echo_server_stream(channel: grpc.Channel) -> Callable[..., Any]:
    """A callable for ``propylon.lab.Echo/ServerStream`` (dict in, iterator of dicts out)."""
    return channel.unary_stream(f"/{ECHO_SERVICE}/ServerStream", request_serializer=_dumps,
                                response_deserializer=_loads)


def _unary(request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
    code = int(request.get("code", 0) or 0)
    if code:
        status = next((s for s in grpc.StatusCode if s.value[0] == code), grpc.StatusCode.UNKNOWN)
        context.abort(status, str(request.get("details", "failure asked for by the client")))
    context.set_trailing_metadata((("x-lab-trailer", "echo"),))
    metadata = {m.key: m.value if isinstance(m.value, str) else m.value.decode("latin-1")
                for m in context.invocation_metadata()}
    return {"message": request.get("message", ""), "metadata": metadata, "peer": context.peer()}


def _server_stream(request: dict[str, Any], context: grpc.ServicerContext) -> Iterator[dict[str, Any]]:
    count = int(request.get("count", 3))
    interval = int(request.get("interval_ms", 0)) / 1000
    for i in range(count):
        if i and interval:
            time.sleep(interval)  # runs in the server's worker thread, not an event loop
        yield {"message": request.get("message", ""), "index": i}


class GrpcMember(Member):
    """gRPC health + echo on 127.0.0.1:19000 (h2c) and 127.0.0.1:19001 (TLS)."""

    name = "grpc"
    default_ports = (19000, 19001)

    def __init__(self, config: MemberConfig) -> None:
        super().__init__(config)
        self._server: Optional[grpc.Server] = None

    async def start(self) -> list[Endpoint]:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                             options=[("grpc.so_reuseport", 0)])
        health_servicer = health.HealthServicer()
        for svc in ("", ECHO_SERVICE):
            health_servicer.set(svc, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(
                _unary, request_deserializer=_loads, response_serializer=_dumps),
            "ServerStream": grpc.unary_stream_rpc_method_handler(
                _server_stream, request_deserializer=_loads, response_serializer=_dumps),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ECHO_SERVICE, handlers),))
        host = self.config.host
        certs = self.config.certs
        creds = grpc.ssl_server_credentials(
            [(certs.upstream_key.read_bytes(), certs.upstream_cert.read_bytes())])
        plain_addr = f"{host}:{self.config.port(0, self.default_ports[0])}"
        secure_addr = f"{host}:{self.config.port(1, self.default_ports[1])}"
        try:
            plain = server.add_insecure_port(plain_addr)
            secure = server.add_secure_port(secure_addr, creds)
        except RuntimeError as exc:  # newer grpcio raises instead of returning 0
            raise OSError(f"grpc: could not bind {plain_addr} / {secure_addr}: {exc}") from exc
        if not plain or not secure:
            raise OSError(f"grpc: could not bind {plain_addr} / {secure_addr} (already in use?)")
        server.start()
        self._server = server
        self.endpoints = [Endpoint(self.name, "grpc", host, plain),
                          Endpoint(self.name, "grpcs", host, secure)]
        return self.endpoints

    async def close(self) -> None:
        if self._server is not None:
            done = self._server.stop(grace=0.2)
            await asyncio.to_thread(done.wait)
            self._server = None
