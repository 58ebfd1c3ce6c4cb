"""Circuit breakers: stop sending requests to what keeps failing, probe, resume.

A route's breaker (the ``circuit_breaker`` plugin) counts its requests' answers; a
cluster's breaker counts every attempt on its backends, whatever the route. Both
answer 503 at once while open, through :func:`circuit_open`, so the proxy's error
log says why.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

from ..errors import Error, ErrorType
from .config import models as m

__all__ = ["CircuitBreaker", "circuit_open", "CLOSED", "OPEN", "HALF_OPEN"]

log = logging.getLogger("propylon.gateway")


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
#: A breaker's window is counted in this many slices (older slices drop out whole).
SLICES = 10


class CircuitBreaker:
    """Closed → open → half-open → closed, from the outcomes ``record`` is told.

    Outcomes are counted in ``SLICES`` slices of the window, so memory stays fixed
    however many requests pass. Every change of state is logged with its reason.
    """

    def __init__(self, conf: m.CircuitBreakerConf, what: str) -> None:
        self.what = what
        self.failures = conf.failures
        self.ratio = conf.failure_ratio
        self.min_requests = conf.min_requests
        self.window = conf.window
        self.cooldown = conf.cooldown
        self.slice = conf.window / SLICES
        self.state = CLOSED
        self.why = ""
        self._until = 0.0       # open: when the cool-down ends; half-open: when a lost probe is replaced
        self._slices: list = []  # [slice number, requests, failures], oldest first

    def refusal(self) -> Optional[str]:
        """None when a request may go through now, else why it may not."""
        if self.state is CLOSED:
            return None
        now = time.monotonic()
        if now < self._until:
            return self.why
        if self.state is OPEN:
            self.state = HALF_OPEN
            log.info("circuit breaker of %s half-open after %gs: one probe request goes through",
                     self.what, self.cooldown)
        # The probe (or, when the last probe never reported, another one).
        self._until = now + self.cooldown
        self.why = f"circuit breaker of {self.what} is half-open: a probe request is in progress"
        return None

    def record(self, ok: bool) -> None:
        """The outcome of one request that went through."""
        if self.state is not CLOSED:
            if self.state is HALF_OPEN:
                if ok:
                    self.state = CLOSED
                    self._slices = []
                    log.info("circuit breaker of %s closed: the probe request succeeded", self.what)
                else:
                    self._open("the probe request failed")
            return
        now = time.monotonic()
        number = int(now / self.slice)
        slices = self._slices
        while slices and slices[0][0] <= number - SLICES:
            del slices[0]
        if not slices or slices[-1][0] != number:
            slices.append([number, 0, 0])
        current = slices[-1]
        current[1] += 1
        if ok:
            return
        current[2] += 1
        failed = sum(s[2] for s in slices)
        if failed >= self.failures:
            self._open(f"{failed} failures within {self.window:g}s")
            return
        if self.ratio is not None:
            total = sum(s[1] for s in slices)
            if total >= self.min_requests and failed >= self.ratio * total:
                self._open(f"{failed} of {total} requests failed within {self.window:g}s")

    def _open(self, reason: str) -> None:
        self.state = OPEN
        self._until = time.monotonic() + self.cooldown
        self.why = f"circuit breaker of {self.what} is open ({reason}); answering 503 for {self.cooldown:g}s"
        log.warning("%s", self.why)


def circuit_open(why: str) -> Error:
    """The error that answers a request refused by an open breaker: 503, logged with why."""
    return Error.explain(ErrorType.http_status(503), why)
