"""The built-in metrics: what every proxy operator wants without writing a line.

A request adds to the plain counters of its upstream's :class:`~.record.UpstreamStats`
(on the event loop: no locks, no label tuples, no ``prometheus_client`` child
lookups); rarer events (errors, limiter decisions) go to dicts keyed by label
tuples. A collector turns both into Prometheus families when scraped. Every label
value comes from a bounded set (service names, methods, status classes, error
types, configured upstreams), and upstream addresses beyond
:data:`MAX_UPSTREAM_LABELS` share the label ``other``.

Several workers, one view (``threads: N``): each worker writes its values to its own
file in a directory of the server (every second, and whenever it answers a scrape);
the worker that answers a scrape adds the other workers' files to its own live
values. Counters of a worker that died stay in its file, so a restarted worker does
not make a total go backwards; gauges count only workers that are still alive.
A worker's answer is at most one flush interval behind the others' traffic.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import shutil
import tempfile
import threading
from typing import Any, Callable, Iterable, Iterator, Optional

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .record import DURATION_BUCKETS, MAX_UPSTREAM_LABELS, METHODS, STATUS_CLASSES

__all__ = ["BuiltinMetrics", "DURATION_BUCKETS", "MAX_UPSTREAM_LABELS", "status_class"]

log = logging.getLogger("propylon.metrics")


# name -> (help, label names); counters are exposed with ``_total`` appended.
_COUNTERS = {
    "propylon_requests": ("Requests finished, by method, status class and upstream.",
                          ("service", "method", "status_class", "upstream")),
    "propylon_request_body_bytes": ("Request body bytes received from clients.", ("service",)),
    "propylon_response_body_bytes": ("Response body bytes sent to clients.", ("service",)),
    "propylon_upstream_connections_opened": ("New upstream connections.", ("service", "upstream")),
    "propylon_upstream_connections_reused": ("Upstream requests sent on a reused connection.",
                                             ("service", "upstream")),
    "propylon_upstream_retries": ("Upstream attempts that were retried, by the upstream that failed.",
                                  ("service", "upstream")),
    "propylon_errors": ("Errors while proxying, by error type and the side it came from.",
                        ("service", "type", "source")),
    "propylon_limiter_decisions": ("Rate and concurrency limiter decisions.", ("limiter", "decision")),
}
_HISTOGRAMS = {
    "propylon_request_duration_seconds": ("Time from the request head to the end of the response.",
                                          ("service", "upstream")),
    "propylon_upstream_connect_duration_seconds": ("Time to open a new upstream connection.",
                                                   ("service", "upstream")),
    "propylon_upstream_response_header_duration_seconds": (
        "Time from sending the request upstream to its response head (first byte).",
        ("service", "upstream")),
}
_GAUGES = {
    "propylon_downstream_connections": ("Open client connections.", ("service",)),
    "propylon_upstream_connections": ("Upstream HTTP/1 connections, idle in the pool or in use.",
                                      ("service", "state")),
}
_HEALTH = ("propylon_backend_healthy", "1 when the load balancer considers the backend healthy and enabled.",
           ("balancer", "backend"))


def status_class(status: int) -> str:
    """``"2xx"``… for a status code, ``"none"`` when no response went out."""
    return STATUS_CLASSES[status // 100] if 100 <= status < 600 else "none"


class Histogram:
    """Non-cumulative bucket counts (the last one is +Inf) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self, counts: Optional[list] = None, total: float = 0.0) -> None:
        self.counts = counts if counts is not None else [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = total

    def add(self, counts: list, total: float) -> None:
        self.counts = [a + b for a, b in zip(self.counts, counts)]
        self.sum += total


class BuiltinMetrics(Collector):
    """The values of one process, and the collector that exposes them (summed over
    the workers when ``directory`` is set; see the module docstring).

    Register it once in a ``CollectorRegistry`` (``Observability`` does so with
    prometheus_client's default registry, which ``prometheus_http_service`` serves).
    """

    def __init__(self, directory: Optional[str] = None, flush_interval: float = 1.0) -> None:
        self.directory = directory
        self.flush_interval = flush_interval
        self.counters: dict[str, dict[tuple, float]] = {name: {} for name in _COUNTERS}
        self.histograms: dict[str, dict[tuple, Histogram]] = {name: {} for name in _HISTOGRAMS}
        self.errors = self.counters["propylon_errors"]
        #: each service's list of UpstreamStats (RecordSettings.all_stats)
        self.stat_lists: list[list] = []
        #: callables returning {labels: value} for this worker, read when values are taken
        self.gauge_sources: list[Callable[[], dict[str, dict[tuple, float]]]] = []
        self.balancers: dict[str, Any] = {}
        self._flusher: Optional[asyncio.TimerHandle] = None
        self._pid = 0
        if directory is not None:
            os.makedirs(directory, exist_ok=True)

    @classmethod
    def for_workers(cls, directory: Optional[str] = None) -> "BuiltinMetrics":
        """A store shared by forked workers through files in ``directory`` (made
        here, or emptied if it exists: values of an earlier server run are not ours)."""
        if directory is None:
            directory = tempfile.mkdtemp(prefix="propylon-metrics-")
            # Removed when the process that made it (the master) exits; the forked
            # workers inherit the handler, hence the pid check.
            atexit.register(_remove_if_owner, directory, os.getpid())
        elif os.path.isdir(directory):
            shutil.rmtree(directory)
        return cls(directory)

    # --- recording (on the event loop) ----------------------------------------------
    @staticmethod
    def count(series: dict, labels: tuple, amount: float = 1) -> None:
        """Add ``amount`` to a counter series (one of the dicts named in ``__init__``)."""
        series[labels] = series.get(labels, 0) + amount

    def limiter_decision(self, limiter: str, allowed: bool) -> None:
        """Count one decision of the limiter named ``limiter`` (a name from code or
        configuration, never from a request)."""
        self.count(self.counters["propylon_limiter_decisions"], (limiter, "allowed" if allowed else "rejected"))

    def watch_balancer(self, name: str, balancer: Any) -> None:
        """Expose ``balancer.health_snapshot()`` as ``propylon_backend_healthy``
        (this worker's view: every worker runs its own health checks)."""
        self.balancers[name] = balancer

    def start_flushing(self) -> None:
        """In a worker with a running loop: write this worker's values every
        ``flush_interval`` seconds. Called on the first request; idempotent."""
        if self.directory is None or (self._flusher is not None and self._pid == os.getpid()):
            return
        self._pid = os.getpid()
        self._flusher = asyncio.get_running_loop().call_later(self.flush_interval, self._flush_tick)

    def _flush_tick(self) -> None:
        loop = asyncio.get_running_loop()
        data = self._dump()
        loop.run_in_executor(None, self._write, data)
        self._flusher = loop.call_later(self.flush_interval, self._flush_tick)

    def flush_now(self) -> None:
        """Write this worker's values at once (at shutdown)."""
        if self.directory is not None and self._pid == os.getpid():
            self._write(self._dump())

    # --- taking the values --------------------------------------------------------------
    def _dump(self) -> dict:
        """This process's values as plain data (copies: a scrape runs in a thread)."""
        gauges: dict[str, dict[tuple, float]] = {}
        for source in self.gauge_sources:
            for name, series in source().items():
                out = gauges.setdefault(name, {})
                for labels, value in series.items():
                    out[labels] = out.get(labels, 0) + value
        counters = {name: dict(series) for name, series in self.counters.items()}
        histograms: dict[str, dict[tuple, Histogram]] = {name: {} for name in _HISTOGRAMS}
        for stats in list(self.stat_lists):
            for st in list(stats):
                _add_stats(counters, histograms, st)
        return {
            "pid": os.getpid(),
            "counters": {name: [[list(k), v] for k, v in series.items()] for name, series in counters.items()},
            "histograms": {name: [[list(k), h.counts, h.sum] for k, h in series.items()]
                           for name, series in histograms.items()},
            "gauges": {name: [[list(k), v] for k, v in series.items()] for name, series in gauges.items()},
        }

    def _write(self, data: dict) -> None:
        path = os.path.join(self.directory, f"{data['pid']}.json")
        tmp = f"{path}.{threading.get_ident()}.tmp"  # the timer and a scrape may write at once
        try:
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except OSError as e:
            log.warning("cannot write worker metrics to %s: %s", path, e)

    def _others(self) -> Iterator[tuple[dict, bool]]:
        """The other workers' last values, and whether each worker is alive."""
        me = os.getpid()
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if not name.endswith(".json") or name == f"{me}.json":
                continue
            try:
                with open(os.path.join(self.directory, name)) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                continue  # being replaced this instant, or torn: the next scrape has it
            yield data, _alive(data["pid"])

    def describe(self) -> Iterable[Any]:
        """The families without values (what registering asks for; no file is touched)."""
        for name, (doc, labels) in _COUNTERS.items():
            yield CounterMetricFamily(name, doc, labels=labels)
        for name, (doc, labels) in _HISTOGRAMS.items():
            yield HistogramMetricFamily(name, doc, labels=labels)
        for name, (doc, labels) in _GAUGES.items():
            yield GaugeMetricFamily(name, doc, labels=labels)
        yield GaugeMetricFamily(*_HEALTH[:2], labels=_HEALTH[2])

    def totals(self) -> tuple[dict, dict, dict]:
        """Every worker's values summed, as ``(counters, histograms, gauges)``: dicts by
        family name (counters without ``_total``) of dicts by label tuple (gauges count
        live workers only). What a scrape shows; it reads files, so call it off the loop."""
        mine = self._dump()
        parts = [(mine, True)]
        if self.directory is not None:
            self._write(mine)  # what this scrape shows is never more than what is kept
            parts.extend(self._others())
        counters: dict[str, dict[tuple, float]] = {name: {} for name in _COUNTERS}
        hists: dict[str, dict[tuple, Histogram]] = {name: {} for name in _HISTOGRAMS}
        gauges: dict[str, dict[tuple, float]] = {name: {} for name in _GAUGES}
        for data, alive in parts:
            for name, rows in data["counters"].items():
                out = counters.get(name)
                if out is not None:
                    for labels, value in rows:
                        key = tuple(labels)
                        out[key] = out.get(key, 0) + value
            for name, rows in data["histograms"].items():
                out_h = hists.get(name)
                if out_h is not None:
                    for labels, counts, total in rows:
                        key = tuple(labels)
                        h = out_h.get(key)
                        if h is None:
                            out_h[key] = Histogram(list(counts), total)
                        else:
                            h.add(counts, total)
            if alive:
                for name, rows in data["gauges"].items():
                    out = gauges.get(name)
                    if out is not None:
                        for labels, value in rows:
                            key = tuple(labels)
                            out[key] = out.get(key, 0) + value
        return counters, hists, gauges

    def collect(self) -> Iterable[Any]:
        counters, hists, gauges = self.totals()
        for name, (doc, labels) in _COUNTERS.items():
            fam = CounterMetricFamily(name, doc, labels=labels)
            for key, value in sorted(counters[name].items()):
                fam.add_metric(key, value)
            yield fam
        for name, (doc, labels) in _HISTOGRAMS.items():
            fam_h = HistogramMetricFamily(name, doc, labels=labels)
            for key, h in sorted(hists[name].items()):
                cumulative, running = [], 0
                for bound, count in zip((*map(_float_label, DURATION_BUCKETS), "+Inf"), h.counts):
                    running += count
                    cumulative.append((bound, running))
                fam_h.add_metric(key, cumulative, h.sum)
            yield fam_h
        for name, (doc, labels) in _GAUGES.items():
            fam_g = GaugeMetricFamily(name, doc, labels=labels)
            for key, value in sorted(gauges[name].items()):
                fam_g.add_metric(key, value)
            yield fam_g
        health = GaugeMetricFamily(_HEALTH[0], _HEALTH[1], labels=_HEALTH[2])
        for lb_name, balancer in list(self.balancers.items()):
            for row in balancer.health_snapshot():
                health.add_metric((lb_name, str(row.backend.addr)),
                                  1.0 if row.healthy and row.enabled else 0.0)
        yield health


def _add_stats(counters: dict, histograms: dict, st: Any) -> None:
    """Add one UpstreamStats' values to label-keyed series (copies: a scrape may run
    in a thread while the loop counts on)."""
    svc, up = st.service, st.upstream
    requests = counters["propylon_requests"]
    classes = len(STATUS_CLASSES)
    for i, n in enumerate(list(st.requests)):
        if n:
            key = (svc, METHODS[i // classes], STATUS_CLASSES[i % classes], up)
            requests[key] = requests.get(key, 0) + n
    for name, value in (("propylon_upstream_connections_opened", st.opened),
                        ("propylon_upstream_connections_reused", st.reused),
                        ("propylon_upstream_retries", st.retries)):
        if value:
            series = counters[name]
            series[(svc, up)] = series.get((svc, up), 0) + value
    for name, value in (("propylon_response_body_bytes", st.sent), ("propylon_request_body_bytes", st.received)):
        if value:
            series = counters[name]
            series[(svc,)] = series.get((svc,), 0) + value
    for name, counts, total in (("propylon_request_duration_seconds", st.durations, st.duration_sum),
                                ("propylon_upstream_connect_duration_seconds", st.connect_times, st.connect_sum),
                                ("propylon_upstream_response_header_duration_seconds", st.header_times,
                                 st.header_sum)):
        counts = list(counts)
        if any(counts):
            series = histograms[name]
            h = series.get((svc, up))
            if h is None:
                series[(svc, up)] = Histogram(counts, total)
            else:
                h.add(counts, total)


def _float_label(bound: float) -> str:
    return repr(float(bound))


def _remove_if_owner(directory: str, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
