"""The opt-in per-request trace: a request showing the service's trace token (or
sampled) gets one JSON line with its upstream attempts, the phase it ended in and
its status; others get nothing, and the token never reaches the upstream."""

from __future__ import annotations

import json
import logging
import time

import pytest
from prometheus_client import CollectorRegistry

from support import free_port
from test_tracing import ToBlue, get, upstream_header

from propylon.metrics import Observability

TOKEN = "let-me-see-1234"


def traces(caplog, n: int) -> list[dict]:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        found = [json.loads(r.getMessage().split(" ", 1)[1]) for r in caplog.records if r.name == "propylon.trace"]
        if len(found) >= n:
            return found
        time.sleep(0.02)
    return [json.loads(r.getMessage().split(" ", 1)[1]) for r in caplog.records if r.name == "propylon.trace"]


def test_token_traces_a_retried_request(lab, serve, caplog):
    obs = Observability(registry=CollectorRegistry(), trace_token=TOKEN, trace_keep=4)
    dead = ("127.0.0.1", free_port())
    url = serve(ToBlue(lab.address("blue"), dead=dead), obs)
    with caplog.at_level(logging.WARNING, logger="propylon.trace"):
        _, echo = get(url + "/echo", f"X-Propylon-Trace: {TOKEN}")
        [trace] = traces(caplog, 1)
    assert upstream_header(echo, "x-propylon-trace") == []  # the token stays here
    assert trace["status"] == 200 and trace["path"] == "/echo" and trace["phase"] == "response_body"
    first, second = trace["attempts"]
    assert first["peer"] == f"127.0.0.1:{dead[1]}" and "refused" in first["error"].lower()
    assert first.get("reused") is None  # it never got a connection
    assert second["status"] == 200 and second["reused"] is False and "connect_ms" in second
    assert "error" not in second
    assert list(obs.recent_traces) == [trace]


@pytest.mark.parametrize("header", [None, "X-Propylon-Trace: wrong-token-0000"])
def test_no_token_or_a_wrong_one_traces_nothing(lab, serve, caplog, header):
    obs = Observability(registry=CollectorRegistry(), trace_token=TOKEN, trace_keep=4)
    url = serve(ToBlue(lab.address("blue")), obs)
    with caplog.at_level(logging.WARNING, logger="propylon.trace"):
        get(url + "/echo", *([header] if header else []))
        time.sleep(0.2)
    assert traces(caplog, 0) == [] and not obs.recent_traces


def test_the_header_is_not_honoured_without_a_configured_token(lab, serve, caplog):
    obs = Observability(registry=CollectorRegistry(), trace_keep=4)
    url = serve(ToBlue(lab.address("blue")), obs)
    with caplog.at_level(logging.WARNING, logger="propylon.trace"):
        get(url + "/echo", f"X-Propylon-Trace: {TOKEN}")
        time.sleep(0.2)
    assert traces(caplog, 0) == [] and not obs.recent_traces


def test_sampling_traces_every_request_at_rate_one(lab, serve, caplog):
    obs = Observability(registry=CollectorRegistry(), trace_sample=1.0)
    url = serve(ToBlue(lab.address("blue")), obs)
    with caplog.at_level(logging.WARNING, logger="propylon.trace"):
        for _ in range(3):
            get(url + "/echo")
        found = traces(caplog, 3)
    assert [t["status"] for t in found] == [200, 200, 200]
    assert found[1]["attempts"][0]["reused"] is True  # curl's new connection, the proxy's pooled one


@pytest.mark.parametrize("kw,field", [({"trace_token": "short"}, "trace_token"),
                                      ({"trace_sample": 2.0}, "trace_sample")])
def test_trace_settings_are_checked(kw, field):
    with pytest.raises(ValueError, match=field):
        Observability(registry=CollectorRegistry(), **kw)
