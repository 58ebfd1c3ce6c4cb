"""The report: a fixed-width table, Propylon-to-nginx ratios, and the JSON document.

Ratios compare a ``propylon`` row with its group's ``reference`` (nginx) row measured
in the same run: ``req/s ratio`` = Propylon's req/s ÷ nginx's (higher is better),
``p99 ratio`` = Propylon's p99 ÷ nginx's (lower is better).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from .runner import BenchParams, ScenarioResult

__all__ = ["Ratio", "compute_ratios", "render", "to_json"]

_COLUMNS = ("scenario", "req/s", "p50", "p99", "errors", "cpu", "req/s ratio", "p99 ratio")


@dataclass(frozen=True)
class Ratio:
    """One Propylon row against its group's nginx row."""

    scenario: str
    reference: str
    rps: float | None
    p99: float | None


def compute_ratios(results: Sequence[ScenarioResult]) -> dict[str, Ratio]:
    """Ratios for every measured ``propylon`` row whose group has a measured reference."""
    refs = {r.group: r for r in results if r.role == "reference" and r.load is not None}
    out: dict[str, Ratio] = {}
    for r in results:
        ref = refs.get(r.group)
        if r.role != "propylon" or r.load is None or ref is None or ref.load is None:
            continue
        if r.load.requests == 0 or ref.load.requests == 0:
            continue  # a run where nothing completed has no meaningful ratio
        rps = r.load.requests_per_sec / ref.load.requests_per_sec if ref.load.requests_per_sec else None
        p99 = None
        if r.load.p99_ms is not None and ref.load.p99_ms:
            p99 = r.load.p99_ms / ref.load.p99_ms
        out[r.name] = Ratio(r.name, ref.name, rps, p99)
    return out


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}us" if value < 1 else f"{value:.2f}ms"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _row(r: ScenarioResult, ratio: Ratio | None) -> tuple[str, ...]:
    if r.load is None:
        return (r.name, "-", "-", "-", "-", "-", "-", "-")
    errors = str(r.load.error_count) + (" !" if r.load.flagged else "")
    cpu = "-" if r.cpu_cores is None else f"{r.cpu_cores:.2f}"
    return (
        r.name, f"{r.load.requests_per_sec:.0f}", _ms(r.load.p50_ms), _ms(r.load.p99_ms),
        errors, cpu, _x(ratio.rps if ratio else None), _x(ratio.p99 if ratio else None),
    )


def _notes(results: Sequence[ScenarioResult]) -> list[str]:
    notes = []
    for r in results:
        if r.status == "unavailable":
            notes.append(f"{r.name}: not available ({r.note})")
        elif r.status == "failed":
            notes.append(f"{r.name}: FAILED: {r.note}")
        elif r.load is not None and r.load.flagged:
            detail = ", ".join(f"{k} {v}" for k, v in r.load.socket_errors.items() if v)
            if r.load.requests == 0:
                what = "no request completed"
            else:
                what = f"{r.load.requests} requests, {r.load.non_2xx} unsuccessful responses"
            notes.append(f"{r.name}: FLAGGED: {what}; socket errors: {detail or 'none'}")
    return notes


def _busy_warning(machine: dict[str, str]) -> str:
    try:
        load, cores = float(machine["loadavg"]), int(machine["nproc"])
    except (KeyError, ValueError):
        return ""
    if load <= 0.5 * cores:
        return ""
    return (f"WARNING: the machine was busy at start (load average {load:.2f} on {cores} cores); "
            "other work shares the cores, so treat these figures as rough")


def render(results: Sequence[ScenarioResult], *, command: str, machine: dict[str, str],
           params: BenchParams) -> str:
    """The human-readable report: machine, command, table, ratios and notes."""
    ratios = compute_ratios(results)
    rows = [_COLUMNS] + [_row(r, ratios.get(r.name)) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [
        "machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
        f"command: {command}",
        f"load: {params.connections} connections, {params.loadgen_threads} load thread(s), "
        f"{params.duration:g}s measured after {params.warmup:g}s warm-up"
        + (f", median of {params.repeat} runs" if params.repeat > 1 else "")
        + f"; server workers: {params.workers}",
        "",
    ]
    busy = _busy_warning(machine)
    if busy:
        lines.insert(0, busy)
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    lines.append("cpu = cores the front server kept busy; errors = socket errors + unsuccessful "
                 "responses ('!' = run flagged)")
    for ratio in ratios.values():
        lines.append(f"{ratio.scenario} vs {ratio.reference}: req/s {_x(ratio.rps)}, "
                     f"p99 {_x(ratio.p99)}")
    lines.extend(_notes(results))
    return "\n".join(lines)


def to_json(results: Sequence[ScenarioResult], *, command: str, machine: dict[str, str],
            params: BenchParams) -> dict[str, Any]:
    """The same report as a JSON-ready dict."""
    return {
        "command": command,
        "machine": machine,
        "params": asdict(params),
        "results": [r.to_json() for r in results],
        "ratios": {k: asdict(v) for k, v in compute_ratios(results).items()},
    }
