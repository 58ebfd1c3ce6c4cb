"""Helpers for the observability tests: the observed proxy as a process (see
``support.running``), scrapes parsed with prometheus_client's own parser, and load
from h2load."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from support import Example, free_port, running, scrape, total  # noqa: F401 (total: for the tests)

HERE = Path(__file__).parent


class Observed(Example):
    """``run_observed.py`` with its two ports."""

    port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scrape(self) -> dict[tuple, float]:
        """Every sample of one scrape: ``{(name, sorted label items): value}``."""
        return scrape(self.metrics_port)


@contextlib.contextmanager
def observed(upstreams: list[str], *extra: str) -> Iterator[Observed]:
    """The observed proxy over ``upstreams`` (``host:port``) on free ports."""
    port, metrics_port = free_port(), free_port()
    args = [str(port), str(metrics_port)]
    for up in upstreams:
        args += ["--upstream", up]
    args += list(extra)
    with running(str(HERE / "run_observed.py"), port, metrics_port, args=args, cls=Observed) as p:
        p.port, p.metrics_port = port, metrics_port
        yield p


def h2load(url: str, requests: int, clients: int = 4) -> str:
    """Exactly ``requests`` HTTP/1.1 requests over ``clients`` connections; fails unless all got 2xx."""
    out = subprocess.run(["h2load", "--h1", "-n", str(requests), "-c", str(clients), url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"status codes: (\d+) 2xx", out.stdout)
    assert m and int(m.group(1)) == requests, out.stdout
    return out.stdout


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: Optional[str] = None) -> None:
    """Poll ``check`` until it holds (values from other workers and buffered log
    lines arrive within a flush interval)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.1)
