"""What one load-generator run measured, independent of which tool measured it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LoadResult", "ParseError", "parse_duration"]

# Units wrk and h2load print for times, in milliseconds.
_TIME_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


class ParseError(ValueError):
    """The load generator's output lacked a figure the harness needs."""


def parse_duration(number: str, unit: str) -> float | None:
    """Convert a figure such as ``("1.20", "ms")`` to milliseconds; ``None`` for nan.

    Raises :class:`ParseError` for a unit neither wrk nor h2load prints.
    """
    if "nan" in number.lower():
        return None
    try:
        factor = _TIME_UNITS_MS[unit]
    except KeyError:
        raise ParseError(f"unknown time unit {unit!r}") from None
    return float(number) * factor


@dataclass
class LoadResult:
    """Throughput, latency and failures of one measured run.

    ``non_2xx`` counts responses the tool reports as unsuccessful (wrk: status >= 400;
    h2load: anything but 2xx/3xx). ``socket_errors`` maps connect/read/write/timeout
    (wrk) or failed/errored/timeout (h2load) to counts. Latencies are milliseconds,
    ``None`` when the tool could not compute them (no request completed).
    """

    requests: int
    duration_s: float
    requests_per_sec: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        """Socket errors plus unsuccessful responses."""
        return self.non_2xx + sum(self.socket_errors.values())

    @property
    def flagged(self) -> bool:
        """True when anything went wrong during the run, so its figures are suspect."""
        return self.error_count > 0 or self.requests == 0

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``--json`` output."""
        out = asdict(self)
        out["error_count"] = self.error_count
        out["flagged"] = self.flagged
        return out
