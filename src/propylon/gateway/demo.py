"""The embedded demo: Propylon City's blue and green upstreams behind a gateway.

``propylon run`` with no gateway file serves :data:`CONFIG` (``demo.yaml``, shipped
in the package), a gateway file like any other:

* the lab members blue (127.0.0.1:18080) and green (127.0.0.1:18081), started as
  child processes by :func:`start_lab` (already-running ones are used as they are);
* a gateway on 127.0.0.1:6188 that round-robins over them with TCP health checks
  every second, answers ``/healthz`` itself, refuses ``/admin`` with 403, and tags
  every response with ``X-Propylon-Upstream`` (:class:`TagUpstream`);
* Prometheus metrics on 127.0.0.1:6192 (``propylon_demo_requests_total`` and the
  gateway's own).
"""

from __future__ import annotations

import atexit
import logging
import socket
from pathlib import Path
from typing import Optional

from prometheus_client import Counter

from .plugins.base import Plugin

log = logging.getLogger("propylon.demo")

#: The demo's gateway file.
CONFIG = str(Path(__file__).with_name("demo.yaml"))
LISTEN = "127.0.0.1:6188"
METRICS = "127.0.0.1:6192"
UPSTREAMS = {"blue": ("127.0.0.1", 18080), "green": ("127.0.0.1", 18081)}

REQUESTS = Counter("propylon_demo_requests_total", "Requests seen by the demo gateway", ["upstream"])


class TagUpstream(Plugin):
    """Names the upstream that answered in ``X-Propylon-Upstream`` and counts it."""

    async def response_filter(self, session, upstream_response, ctx) -> None:
        if ctx.backend is not None:
            upstream_response.insert_header("X-Propylon-Upstream", str(ctx.backend.addr))

    async def logging(self, session, error, ctx) -> None:
        REQUESTS.labels(str(ctx.backend.addr) if ctx.backend is not None else "none").inc()


def _accepts(addr: tuple[str, int]) -> bool:
    try:
        socket.create_connection(addr, timeout=0.3).close()
        return True
    except OSError:
        return False


def start_lab() -> Optional[object]:
    """Start blue and green unless they already answer; returns the Lab or None."""
    missing = [name for name, addr in UPSTREAMS.items() if not _accepts(addr)]
    if not missing:
        log.info("lab upstreams already running")
        return None
    from ..lab import Lab

    lab = Lab(only=missing)
    lab.start()
    atexit.register(lab.close)
    return lab


BANNER = f"""\
Propylon demo gateway ({CONFIG})
  gateway   http://{LISTEN}/          round robin over blue and green
  health    http://{LISTEN}/healthz
  refused   http://{LISTEN}/admin     (403)
  metrics   http://{METRICS}/metrics
  upstreams blue http://127.0.0.1:18080  green http://127.0.0.1:18081
Try:  curl -i http://{LISTEN}/      (Ctrl-C stops everything)
"""
