"""Lesson 48, part two: built-in metrics per upstream and a JSON access log, no hook code."""

import json
import re

from example_support import curl
from support import running


def test_builtin_metrics_and_access_log(city):
    with running("examples/48_builtin_metrics.py", 6199, 6200) as ex:
        # Before traffic: the families are there, empty; backend health already known.
        before = curl("http://127.0.0.1:6200/").text
        assert "# TYPE propylon_requests_total counter" in before
        assert "propylon_requests_total{" not in before
        ex.wait_log(r"listening on http://127\.0\.0\.1:6199 \(lesson48\)")

        replies = [curl("http://127.0.0.1:6199/") for _ in range(4)]
        assert sorted(r.text for r in replies) == ["Response from BLUE"] * 2 + ["Response from GREEN"] * 2
        ids = [r.header("x-request-id") for r in replies]
        assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)

        after = curl("http://127.0.0.1:6200/").text
        for port in (18080, 18081):
            assert (f'propylon_requests_total{{method="GET",service="lesson48",status_class="2xx",'
                    f'upstream="127.0.0.1:{port}"}} 2.0') in after
            assert f'propylon_backend_healthy{{backend="127.0.0.1:{port}",balancer="blue-green"}} 1.0' in after
        ex.wait_log(ids[-1])
        logged = [json.loads(line) for line in ex.log().splitlines() if line.startswith("{")]
        assert [e["request_id"] for e in logged] == ids
        assert {e["status"] for e in logged} == {200}
