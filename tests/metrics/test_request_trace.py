"""The opt-in per-request trace: a request showing the service's trace token (or
sampled) gets one JSON line with the hooks that ran and their times, its upstream
attempts, the phase it ended in and its status; others get nothing, and the token
never reaches the upstream. The metrics service serves the kept traces to the
token's holder only."""

from __future__ import annotations

import json
import logging
import time

import pytest
from prometheus_client import CollectorRegistry

from support import LoopThread, curl_json, free_port
from test_tracing import ToBlue, get, upstream_header

from propylon.metrics import Observability, prometheus_http_service
from propylon.shutdown import ShutdownWatch

TOKEN = "let-me-see-1234"


def traces(caplog, n: int) -> list[dict]:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        found = [json.loads(r.getMessage().split(" ", 1)[1]) for r in caplog.records if r.name == "propylon.trace"]
        if len(found) >= n:
            return found
        time.sleep(0.02)
    return [json.loads(r.getMessage().split(" ", 1)[1]) for r in caplog.records if r.name == "propylon.trace"]


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


class Hooked(ToBlue):
    """ToBlue with request, upstream-request, response and logging hooks of its own."""

    async def request_filter(self, session, ctx):
        return False

    async def upstream_request_filter(self, session, upstream_request, ctx):
        upstream_request.insert_header("X-Hooked", "1")

    async def response_filter(self, session, upstream_response, ctx):
        upstream_response.insert_header("X-Seen", "1")

    async def logging(self, session, e, ctx):
        ctx["logged"] = True


def hook_names(trace: dict) -> list[str]:
    return [h["hook"] for h in trace["hooks"]]


def test_token_traces_a_retried_request_with_its_hooks_and_attempts(lab, serve, caplog):
    obs = Observability(registry=CollectorRegistry(), trace_token=TOKEN, trace_keep=4)
    dead = ("127.0.0.1", free_port())
    url = serve(Hooked(lab.address("blue"), dead=dead), obs)
    with caplog.at_level(logging.WARNING, logger="propylon.trace"):
        resp, echo = get(url + "/echo", f"X-Propylon-Trace: {TOKEN}")
        [trace] = traces(caplog, 1)
    assert resp["x-seen"] == "1" and upstream_header(echo, "x-hooked") == ["1"]  # the hooks still work
    assert upstream_header(echo, "x-propylon-trace") == []  # the token stays here
    assert trace["status"] == 200 and trace["path"] == "/echo" and trace["phase"] == "response_body"
    # In the order they ran: one upstream_peer per attempt, the refused connect's hook.
    assert hook_names(trace) == ["new_ctx", "request_filter", "upstream_peer", "fail_to_connect", "upstream_peer",
                                 "upstream_request_filter", "response_filter", "logging"]
    offsets = [h["at_ms"] for h in trace["hooks"]]
    assert offsets == sorted(offsets) and all(h["ms"] >= 0 for h in trace["hooks"])
    assert all(h["at_ms"] + h["ms"] <= trace["duration_ms"] for h in trace["hooks"])
    first, second = trace["attempts"]
    assert first["peer"] == f"127.0.0.1:{dead[1]}" and "refused" in first["error"].lower()
    assert first.get("reused") is None  # it never got a connection
    assert second["status"] == 200 and second["reused"] is False and "connect_ms" in second
    assert "error" not in second
    blue = "{}:{}".format(*lab.address("blue"))
    assert trace["peer"] == blue and trace["reused"] is False and trace["status"] == 200
    assert trace["request_id"] == resp["x-request-id"]
    assert list(obs.recent_traces) == [trace]


def test_a_second_traced_request_reuses_the_upstream_connection(lab, serve, caplog):
    obs = Observability(registry=CollectorRegistry(), trace_token=TOKEN, trace_keep=4)
    url = serve(Hooked(lab.address("blue")), obs)
    with caplog.at_level(logging.WARNING, logger="propylon.trace"):
        get(url + "/echo", f"X-Propylon-Trace: {TOKEN}")
        get(url + "/echo")  # not traced: in between, nothing is timed or logged
        get(url + "/echo", f"X-Propylon-Trace: {TOKEN}")
        time.sleep(0.2)
        first, second = traces(caplog, 2)
    assert (first["reused"], second["reused"]) == (False, True)
    assert second["attempts"][0]["reused"] is True and "connect_ms" not in second["attempts"][0]
    assert hook_names(second) == ["new_ctx", "request_filter", "upstream_peer", "upstream_request_filter",
                                  "response_filter", "logging"]
    assert len(obs.recent_traces) == 2


@pytest.fixture
def trace_endpoint(lab, serve):
    """``start(obs)``: a proxy observed by ``obs`` and a metrics service serving its
    kept traces; returns (proxy url, endpoint url)."""
    lt = LoopThread()
    running = []

    def start(obs):
        url = serve(Hooked(lab.address("blue")), obs)
        service = prometheus_http_service(CollectorRegistry(), traces=obs)
        service.add_tcp("127.0.0.1:0")
        shutdown = ShutdownWatch()
        bound = [(listener, listener.bind()) for listener in service.listeners]
        lt.run(service.start_serving(bound, shutdown))
        running.append((service, shutdown))
        return url, f"http://127.0.0.1:{bound[0][1].getsockname()[1]}"

    try:
        yield start
    finally:
        for service, shutdown in running:
            lt.call(service.stop_accepting)
            lt.call(shutdown.trigger)
            lt.run(service.wait_drained())
        lt.close()


def test_the_endpoint_serves_a_trace_by_request_id_with_the_token_only(trace_endpoint):
    url, endpoint = trace_endpoint(Observability(registry=CollectorRegistry(), trace_token=TOKEN, trace_keep=4))
    resp, _ = get(url + "/echo", f"X-Propylon-Trace: {TOKEN}")
    get(url + "/echo", "X-Propylon-Trace: wrong-token-0000")  # traces nothing
    rid = resp["x-request-id"]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        status, listed = curl_json(endpoint + "/traces", f"Authorization: Bearer {TOKEN}")
        if listed["traces"]:
            break
        time.sleep(0.02)
    assert status == 200 and [t["request_id"] for t in listed["traces"]] == [rid]
    status, one = curl_json(f"{endpoint}/traces/{rid}", f"Authorization: Bearer {TOKEN}")
    assert status == 200 and one["traces"] == listed["traces"]
    assert one["traces"][0]["status"] == 200 and one["traces"][0]["hooks"]
    assert curl_json(f"{endpoint}/traces/nope", f"Authorization: Bearer {TOKEN}")[0] == 404
    for headers in [(), ("Authorization: Bearer wrong-token-0000",), (f"X-Propylon-Trace: {TOKEN}",)]:
        status, body = curl_json(f"{endpoint}/traces/{rid}", *headers)
        assert status == 401 and "traces" not in body
        assert curl_json(endpoint + "/traces", *headers)[0] == 401


def test_without_a_configured_token_the_endpoint_shows_nothing(trace_endpoint):
    obs = Observability(registry=CollectorRegistry(), trace_sample=1.0, trace_keep=4)
    url, endpoint = trace_endpoint(obs)
    get(url + "/echo")
    deadline = time.monotonic() + 3
    while not obs.recent_traces and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(obs.recent_traces) == 1  # sampled and kept, but shown to no one
    for headers in [(), ("Authorization: Bearer ",), ("Authorization: Bearer None",)]:
        status, body = curl_json(endpoint + "/traces", *headers)
        assert status == 401 and "traces" not in body
