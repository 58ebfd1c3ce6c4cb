"""Blue, green and the Unix-socket upstream: plain HTTP/1.1 services with a known body.

Like the seed lab's ``http-echo`` containers they answer every path with
``Response from BLUE`` (or GREEN, or UDS) and the headers ``X-App-Name: http-echo``
and ``X-App-Version``; they also answer the common lab paths (``/echo``, ``/slow``,
``/size``, ``/status/N`` ... see :mod:`propylon.lab._routes`).
"""

from __future__ import annotations

from ._base import HttpMember, MemberConfig
from ._messages import LabRequest, LabResponse
from ._routes import Routes, text_response

__all__ = ["BlueMember", "GreenMember", "UdsMember"]


class _ColourMember(HttpMember):
    colour = ""
    version = "1.0.0"

    def __init__(self, config: MemberConfig) -> None:
        body = f"Response from {self.colour}"

        def default(_req: LabRequest) -> LabResponse:
            return text_response(body)

        routes = Routes(self.name, default, base_headers=[
            ("X-App-Name", "http-echo"),
            ("X-App-Version", self.version),
            ("X-Lab-Member", self.name),
        ])
        super().__init__(config, routes)


class BlueMember(_ColourMember):
    """Upstream blue on 127.0.0.1:18080: ``Response from BLUE``, ``X-App-Version: 1.0.0``."""

    name = "blue"
    colour = "BLUE"
    version = "1.0.0"
    default_port = 18080


class GreenMember(_ColourMember):
    """Upstream green on 127.0.0.1:18081: ``Response from GREEN``, ``X-App-Version: 2.0.0``."""

    name = "green"
    colour = "GREEN"
    version = "2.0.0"
    default_port = 18081


class UdsMember(_ColourMember):
    """HTTP/1.1 on the Unix socket /tmp/propylon-lab/upstream.sock: ``Response from UDS``."""

    name = "uds"
    colour = "UDS"
    uds = True
