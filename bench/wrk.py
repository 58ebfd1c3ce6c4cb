"""Running wrk and reading its text report.

wrk prints times with a unit chosen per figure (``us``, ``ms``, ``s``, and ``m``/``h``
for long ones), prints the ``Socket errors`` and ``Non-2xx or 3xx responses`` lines only
when they are non-zero, and prints ``nan`` percentiles when nothing completed. The
parser accepts all of that and refuses output without a ``Requests/sec`` line.
"""

from __future__ import annotations

import logging
import re
import subprocess

from .results import LoadResult, ParseError, parse_duration

log = logging.getLogger(__name__)

__all__ = ["parse_wrk_output", "run_wrk", "wrk_command"]

_NUM = r"(-?nan|[0-9]+(?:\.[0-9]+)?)"
_UNIT = r"(ns|us|µs|ms|s|m|h)"
_RPS = re.compile(r"^Requests/sec:\s*" + _NUM, re.M)
_TOTAL = re.compile(r"^\s*([0-9]+) requests in " + _NUM + _UNIT + r",", re.M)
_PCT = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+" + _NUM + _UNIT + r"\s*$", re.M)
_SOCKET = re.compile(
    r"Socket errors:\s*connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)"
)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s*([0-9]+)")


def parse_wrk_output(text: str) -> LoadResult:
    """Turn wrk's report (run with ``--latency``) into a :class:`LoadResult`.

    Raises :class:`~bench.results.ParseError` when ``Requests/sec`` is missing.
    """
    rps = _RPS.search(text)
    if rps is None or "nan" in rps.group(1):
        raise ParseError("wrk output has no Requests/sec line:\n" + text.strip()[-400:])
    requests, duration_s = 0, 0.0
    total = _TOTAL.search(text)
    if total is not None:
        requests = int(total.group(1))
        duration_s = (parse_duration(total.group(2), total.group(3)) or 0.0) / 1000.0
    pcts: dict[str, float | None] = {}
    for m in _PCT.finditer(text):
        pcts[m.group(1)] = parse_duration(m.group(2), m.group(3))
    errors: dict[str, int] = {}
    sock = _SOCKET.search(text)
    if sock is not None:
        errors = dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups())))
    non2xx = _NON2XX.search(text)
    return LoadResult(
        requests=requests,
        duration_s=duration_s,
        requests_per_sec=float(rps.group(1)),
        p50_ms=pcts.get("50"),
        p99_ms=pcts.get("99"),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=errors,
    )


def wrk_command(wrk: str, url: str, *, connections: int, threads: int, duration: float,
                timeout: float = 2.0, headers: tuple[str, ...] = ()) -> list[str]:
    """The wrk argv for one run; durations are whole seconds (wrk's resolution).
    ``headers`` are request header lines (``"Accept-Encoding: gzip"``)."""
    return [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout))}s",
        "--latency",
        *(arg for line in headers for arg in ("-H", line)),
        url,
    ]


def run_wrk(wrk: str, url: str, *, connections: int, threads: int, duration: float,
            headers: tuple[str, ...] = ()) -> LoadResult:
    """Run wrk against ``url`` and parse its report.

    The run is bounded: it is killed if it lasts 20 s longer than asked. Raises
    :class:`~bench.results.ParseError` (with wrk's output) if it fails.
    """
    argv = wrk_command(wrk, url, connections=connections, threads=threads, duration=duration,
                       headers=headers)
    log.debug("running %s", " ".join(argv))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 20)
    except subprocess.TimeoutExpired as exc:
        raise ParseError(f"wrk did not finish within {duration + 20:.0f}s") from exc
    if done.returncode != 0:
        raise ParseError(f"wrk exited with {done.returncode}: {(done.stderr or done.stdout)[-400:]}")
    result = parse_wrk_output(done.stdout)
    result.command = argv
    return result
