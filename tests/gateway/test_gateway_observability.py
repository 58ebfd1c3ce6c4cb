"""The gateway's built-in observability: ``metrics`` (the ``propylon_*`` series, labelled
by route and backend) and ``access_log``, against a real ``propylon run -c`` process,
requests over loopback, one worker and two."""

from __future__ import annotations

import json
import signal

import pytest

from gateway_support import wait_until
from support import curl_json, free_port, scrape, total

CONF = """\
listeners:
  - {name: web, address: "127.0.0.1:{port}"}
metrics: {address: "127.0.0.1:{metrics}"}
access_log: {format: json, path: access.log, flush_interval: 0.1}
clusters:
  blue: {backends: [{address: "{blue}"}]}
  green: {backends: [{address: "{green}"}]}
routes:
  - {name: to-blue, match: {path: {prefix: /blue}}, proxy: {cluster: blue},
     plugins: {request_id: {}}}
  - {name: to-green, match: {path: {prefix: /green}}, proxy: {cluster: green}}
  - {name: gone, match: {path: {exact: /gone}}, respond: {status: 410, body: "gone"}}
"""


def lines(path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


def traffic(gw, blue: int, green: int) -> None:
    for i in range(blue):
        assert gw.request("GET", f"/blue/{i}")[0] == 200
    for i in range(green):
        assert gw.request("POST", f"/green/{i}", body=b"x" * 10)[0] == 200
    assert gw.request("GET", "/gone")[0] == 410
    assert gw.request("GET", "/nowhere")[0] == 404


@pytest.mark.parametrize("threads", [1, 2])
def test_metrics_and_access_log_reflect_the_requests(gateway_run, lab, tmp_path, threads):
    metrics = free_port()
    text = CONF if threads == 1 else CONF.replace("listeners:", "server: {threads: 2}\nlisteners:")
    gw = gateway_run(text, metrics=metrics)
    blue, green = "%s:%d" % lab.address("blue"), "%s:%d" % lab.address("green")
    traffic(gw, 30, 20)  # one connection each: with two workers, both take some

    def counted() -> dict:
        m = scrape(metrics)
        return m if total(m, "propylon_requests_total") == 52 else {}

    m = wait_until(counted, 5, "52 requests counted over the workers")
    assert total(m, "propylon_requests_total", service="to-blue", method="GET", status_class="2xx",
                 upstream=blue) == 30
    assert total(m, "propylon_requests_total", service="to-green", method="POST", status_class="2xx",
                 upstream=green) == 20
    assert total(m, "propylon_requests_total", service="gone", status_class="4xx", upstream="none") == 1
    # A request no route took carries its listener's name.
    assert total(m, "propylon_requests_total", service="web", status_class="4xx") == 1
    assert total(m, "propylon_request_duration_seconds_count", service="to-blue") == 30
    assert total(m, "propylon_request_body_bytes_total", service="to-green") == 200
    assert total(m, "propylon_upstream_connections_opened_total", upstream=blue) >= 1

    log = tmp_path / "access.log"  # relative to the configuration file
    got = wait_until(lambda: len(lines(log)) == 52 and lines(log), 5, "52 access log lines")
    by_route = {}
    for line in got:
        by_route.setdefault(line["service"], []).append(line)
    assert {k: len(v) for k, v in by_route.items()} == {"to-blue": 30, "to-green": 20, "gone": 1, "web": 1}
    assert {(x["method"], x["status"], x["upstream_addr"]) for x in by_route["to-blue"]} == {("GET", 200, blue)}
    assert sorted(x["path"] for x in by_route["to-green"]) == sorted(f"/green/{i}" for i in range(20))
    # The request_id plugin's id is the one logged (the route without it logs none).
    assert all(len(x["request_id"]) == 32 for x in by_route["to-blue"])
    assert all(x["request_id"] is None for x in by_route["to-green"])
    assert by_route["web"][0]["status"] == 404 and by_route["web"][0]["upstream_addr"] is None


def test_combined_format_to_stdout_and_chosen_json_fields(gateway_run, tmp_path):
    gw = gateway_run(CONF.replace("metrics: {address: \"127.0.0.1:{metrics}\"}\n", "")
                     .replace("{format: json, path: access.log, flush_interval: 0.1}",
                              "{format: combined, flush_interval: 0.1}"))
    status, _, _ = gw.request("GET", "/blue/x?q=1", headers={"User-Agent": "observer-test", "Referer": "/r"})
    assert status == 200
    line = wait_until(lambda: next((x for x in gw.log().splitlines() if '"GET /blue/x?q=1 HTTP/1.1"' in x), None),
                      5, "the combined line on stdout")
    assert line.startswith("127.0.0.1 - - [") and line.endswith('200 18 "/r" "observer-test"'), line

    gw2 = gateway_run(CONF.replace("metrics: {address: \"127.0.0.1:{metrics}\"}\n", "")
                      .replace("path: access.log,", "path: fields.log, fields: [status, path, service],"))
    assert gw2.request("GET", "/green/y")[0] == 200
    got = wait_until(lambda: lines(tmp_path / "fields.log"), 5, "a json line")
    assert got == [{"status": 200, "path": "/green/y", "service": "to-green"}]


def test_reload_keeps_observing_and_refuses_changing_the_log(gateway_run, tmp_path):
    metrics = free_port()
    gw = gateway_run(CONF, metrics=metrics)
    assert gw.request("GET", "/blue/1")[0] == 200
    text = gw.conf_path.read_text()
    # A route change is applied; requests keep being counted and logged, under the new name.
    gw.reload(text.replace("name: to-blue", "name: blue-v2"), wait_for="version 2 applied")
    assert gw.request("GET", "/blue/2")[0] == 200
    m = wait_until(lambda: (lambda s: s if total(s, "propylon_requests_total", service="blue-v2") == 1 else None)(
        scrape(metrics)), 5, "the renamed route counted")
    assert total(m, "propylon_requests_total", service="to-blue") == 1
    assert wait_until(lambda: [x["service"] for x in lines(tmp_path / "access.log")] == ["to-blue", "blue-v2"],
                      5, "both lines logged")
    # Changing the log (or the metrics) needs a restart: refused, with the reason, old config serving.
    gw.conf_path.write_text(text.replace("format: json", "format: combined"))
    gw.popen.send_signal(signal.SIGHUP)
    gw.wait_log("access_log: changed, but only a restart applies this section")
    assert gw.request("GET", "/green/1")[0] == 200
    assert wait_until(lambda: len(lines(tmp_path / "access.log")) == 3, 5, "still json lines")


TRACE_TOKEN = "trace-token-0123456789"


def test_a_traced_request_is_logged_and_served_to_the_token_holder_only(gateway_run, lab):
    metrics = free_port()
    gw = gateway_run(CONF.replace('metrics: {address: "127.0.0.1:{metrics}"}',
                                  'metrics: {address: "127.0.0.1:{metrics}", trace: {token: %s, keep: 10}}'
                                  % TRACE_TOKEN), metrics=metrics)
    status, head, _ = gw.request("GET", "/green/t", headers={"X-Propylon-Trace": TRACE_TOKEN})
    assert status == 200
    rid = head["x-request-id"]  # the route has no request_id plugin: the trace made the id
    assert gw.request("GET", "/green/u")[0] == 200
    assert gw.request("GET", "/green/v", headers={"X-Propylon-Trace": "not-the-token-000000"})[0] == 200
    line = wait_until(lambda: next((x for x in gw.log().splitlines() if "trace {" in x), None), 5, "the trace line")
    logged = json.loads("{" + line.split("trace {", 1)[1])
    green = "%s:%d" % lab.address("green")
    assert (logged["request_id"], logged["path"], logged["status"], logged["peer"]) == (rid, "/green/t", 200, green)
    assert logged["service"] == "to-green" and logged["attempts"][0]["peer"] == green
    hooks = [h["hook"] for h in logged["hooks"]]
    assert "request_filter" in hooks and "upstream_peer" in hooks and hooks[-1] == "logging"
    assert all(h["ms"] >= 0 for h in logged["hooks"])

    endpoint = f"http://127.0.0.1:{metrics}"
    bearer = f"Authorization: Bearer {TRACE_TOKEN}"
    assert curl_json(f"{endpoint}/traces", bearer) == (200, {"traces": [logged]})  # only the traced request
    assert curl_json(f"{endpoint}/traces/{rid}", bearer) == (200, {"traces": [logged]})
    for headers in [(), ("Authorization: Bearer not-the-token-000000",), (f"X-Propylon-Trace: {TRACE_TOKEN}",)]:
        assert curl_json(f"{endpoint}/traces/{rid}", *headers)[0] == 401
    assert len(gw.log().split("trace {")) == 2  # one trace line in all
