"""The cast of Propylon City: every member's name, default addresses and job.

Member classes are imported only when a member is started, so a process that runs
blue does not pay for importing grpc.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from dataclasses import dataclass
from typing import AsyncIterator, Optional, Sequence

from ._base import Endpoint, Member, MemberConfig
from .certs import LabCerts, ensure_certs

__all__ = ["MemberSpec", "MEMBERS", "DEFAULT_UDS_PATH", "member_class", "serve_member"]

DEFAULT_UDS_PATH = "/tmp/propylon-lab/upstream.sock"

_H = "127.0.0.1"


@dataclass(frozen=True)
class MemberSpec:
    """A member as listed in the endpoint map: where it listens by default and what it does."""

    name: str
    factory: str  # "module:Class" inside propylon.lab
    endpoints: tuple[Endpoint, ...]
    description: str
    needs_certs: bool = False


def _spec(name: str, factory: str, eps: Sequence[tuple[str, int]], description: str,
          needs_certs: bool = False) -> MemberSpec:
    return MemberSpec(name, factory, tuple(Endpoint(name, s, _H, p) for s, p in eps),  # type: ignore[arg-type]
                      description, needs_certs)


MEMBERS: dict[str, MemberSpec] = {s.name: s for s in (
    _spec("blue", "colour:BlueMember", [("http", 18080)],
          "HTTP/1.1 'Response from BLUE', X-App-Version 1.0.0; /echo /slow /size /status/N"),
    _spec("green", "colour:GreenMember", [("http", 18081)],
          "HTTP/1.1 'Response from GREEN', X-App-Version 2.0.0; /echo /slow /size /status/N"),
    _spec("advanced-http", "advanced:AdvancedHttpMember", [("http", 18090)],
          "caching headers by path: /short /long /no_store /resource /swr /sie /revalidate ..."),
    _spec("advanced-https", "advanced:AdvancedHttpsMember", [("https", 18443)],
          "TLS, ALPN h2+http/1.1, cert advanced.propylon.test + *.api.propylon.test; shows SNI",
          needs_certs=True),
    _spec("advanced-mtls", "advanced:AdvancedMtlsMember", [("https", 18444)],
          "TLS that wants a lab-CA client certificate (400 without one)", needs_certs=True),
    _spec("advanced-h2c", "advanced:AdvancedH2cMember", [("h2c", 18082)],
          "HTTP/2 cleartext, prior knowledge"),
    _spec("grpc", "grpc_echo:GrpcMember", [("grpc", 19000), ("grpcs", 19001)],
          "gRPC health + propylon.lab.Echo (Unary, ServerStream); h2c and TLS",
          needs_certs=True),
    MemberSpec("uds", "colour:UdsMember", (Endpoint("uds", "http+unix", path=DEFAULT_UDS_PATH),),
               "HTTP/1.1 over a Unix socket, 'Response from UDS'"),
    _spec("forward-proxy", "forward_proxy:ForwardProxyMember", [("connect", 13128)],
          "CONNECT host:port to loopback targets, tunnels bytes both ways"),
    _spec("websocket", "websocket:WebSocketMember", [("ws", 19091)],
          "WebSocket echo (text and binary), answers pings"),
    _spec("blackhole", "blackhole:BlackholeMember", [("tcp", 18099)],
          "accept queue kept full: a TCP connect hangs until the client's timeout"),
)}


def member_class(name: str) -> type[Member]:
    """The class implementing member ``name`` (imported on first use)."""
    try:
        spec = MEMBERS[name]
    except KeyError:
        raise ValueError(f"unknown lab member {name!r}; known: {', '.join(MEMBERS)}") from None
    module, _, cls = spec.factory.partition(":")
    return getattr(importlib.import_module(f"propylon.lab.{module}"), cls)


@contextlib.asynccontextmanager
async def serve_member(name: str, *, ports: Optional[Sequence[int]] = None,
                       certs: Optional[LabCerts] = None, uds_path: Optional[str] = None,
                       host: str = "127.0.0.1") -> AsyncIterator[Member]:
    """Run one member inside the current event loop for the duration of the block.

    ``ports`` overrides the default ports one for one; pass ``[0]`` (``[0, 0]`` for
    grpc) for free ephemeral ports and read ``member.endpoints`` for the real ones.
    ``certs`` defaults to :func:`ensure_certs` of the default directory. Example::

        async with serve_member("blue", ports=[0]) as blue:
            host, port = blue.endpoints[0].address
    """
    if certs is None:
        certs = await asyncio.to_thread(ensure_certs)
    cfg = MemberConfig(certs=certs, ports=ports, uds_path=uds_path, host=host)
    member = member_class(name)(cfg)
    await member.start()
    try:
        yield member
    finally:
        await member.close()
