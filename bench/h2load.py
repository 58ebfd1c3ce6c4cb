"""Running h2load (HTTP/2 load generator from nghttp2) and reading its report.

h2load's summary has throughput and counts but no percentiles, so the run also writes a
per-request log (``--log-file``: start time, status, microseconds to the end of the
response) and p50/p99 are computed from it.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

from .results import LoadResult, ParseError, parse_duration

log = logging.getLogger(__name__)

__all__ = ["h2load_command", "parse_h2load_output", "percentiles_from_log", "run_h2load"]

_FINISHED = re.compile(
    r"^finished in ([0-9.]+)(ns|us|ms|s|m|h), ([0-9.]+) req/s", re.M
)
_REQUESTS = re.compile(
    r"^requests: ([0-9]+) total, ([0-9]+) started, ([0-9]+) done, ([0-9]+) succeeded, "
    r"([0-9]+) failed, ([0-9]+) errored, ([0-9]+) timeout",
    re.M,
)
_PROTOCOL = re.compile(r"^Application protocol: (\S+)", re.M)
_STATUS = re.compile(r"^status codes: ([0-9]+) 2xx, ([0-9]+) 3xx, ([0-9]+) 4xx, ([0-9]+) 5xx", re.M)


def percentiles_from_log(path: Path, wanted: tuple[float, ...] = (50.0, 99.0)) -> list[float | None]:
    """Nearest-rank percentiles (ms) of the response times in an h2load ``--log-file``."""
    times: list[int] = []
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3 and parts[2].strip().isdigit():
                    times.append(int(parts[2]))
    except FileNotFoundError:
        return [None for _ in wanted]
    if not times:
        return [None for _ in wanted]
    times.sort()
    out: list[float | None] = []
    for p in wanted:
        rank = max(1, -(-len(times) * p // 100))  # ceil without floats drifting
        out.append(times[int(rank) - 1] / 1000.0)
    return out


def parse_h2load_output(text: str, log_file: Path | None = None) -> LoadResult:
    """Turn h2load's summary (and optional per-request log) into a :class:`LoadResult`.

    Raises :class:`~bench.results.ParseError` if the ``finished in`` line is missing.
    """
    proto = _PROTOCOL.search(text)
    if proto is not None and proto.group(1) != "h2":
        # The server fell back (e.g. no ALPN h2): the figures would not be HTTP/2's.
        raise ParseError(f"h2load negotiated {proto.group(1)!r}, not h2")
    fin = _FINISHED.search(text)
    if fin is None:
        raise ParseError("h2load output has no 'finished in' line:\n" + text.strip()[-400:])
    req = _REQUESTS.search(text)
    requests, errors = 0, {}
    if req is not None:
        requests = int(req.group(4))
        errors = {"failed": int(req.group(5)) - int(req.group(6)) - int(req.group(7)),
                  "errored": int(req.group(6)), "timeout": int(req.group(7))}
        # "failed" includes errored and timed-out requests; keep the three disjoint.
        errors["failed"] = max(0, errors["failed"])
    status = _STATUS.search(text)
    non_2xx = int(status.group(3)) + int(status.group(4)) if status else 0
    p50, p99 = percentiles_from_log(log_file) if log_file else (None, None)
    return LoadResult(
        requests=requests,
        duration_s=(parse_duration(fin.group(1), fin.group(2)) or 0.0) / 1000.0,
        requests_per_sec=float(fin.group(3)),
        p50_ms=p50,
        p99_ms=p99,
        non_2xx=non_2xx,
        socket_errors=errors,
    )


def h2load_command(h2load: str, url: str, *, connections: int, threads: int, duration: float,
                   warmup: float, streams: int, log_file: Path) -> list[str]:
    """The h2load argv for one timed run (``-D``) with its own warm-up period."""
    argv = [
        h2load,
        f"--clients={connections}",
        f"--threads={threads}",
        f"--max-concurrent-streams={streams}",
        f"--duration={max(1, round(duration))}",
        f"--log-file={log_file}",
    ]
    if warmup > 0:
        argv.append(f"--warm-up-time={max(1, round(warmup))}")
    argv.append(url)
    return argv


def run_h2load(h2load: str, url: str, *, connections: int, threads: int, duration: float,
               warmup: float, streams: int, log_file: Path) -> LoadResult:
    """Run h2load against ``url`` and parse its report (bounded: killed 20 s past its time)."""
    argv = h2load_command(h2load, url, connections=connections, threads=threads,
                          duration=duration, warmup=warmup, streams=streams, log_file=log_file)
    limit = duration + warmup + 20
    log.debug("running %s", " ".join(argv))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        raise ParseError(f"h2load did not finish within {limit:.0f}s") from exc
    if done.returncode != 0:
        raise ParseError(f"h2load exited with {done.returncode}: {(done.stderr or done.stdout)[-400:]}")
    result = parse_h2load_output(done.stdout, log_file)
    result.command = argv
    return result
