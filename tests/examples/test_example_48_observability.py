"""Lesson 48: a counter and a histogram from ``logging``, scraped on a second port."""

import re

from example_support import curl
from support import running


def sample(text: str, series: str) -> float:
    """The value of one exposition line (``name{labels} value``)."""
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert m, f"{series} not in:\n{text}"
    return float(m.group(1))


def test_metrics_follow_the_traffic(city):
    with running("examples/48_observability.py", 6199, 6200) as ex:
        before = curl("http://127.0.0.1:6200/")
        assert before.status == 200
        assert "# HELP http_requests_total Total number of HTTP requests processed." in before.text
        assert "# TYPE http_requests_total counter" in before.text
        assert "# TYPE http_request_duration_seconds histogram" in before.text
        assert sample(before.text, "http_requests_total") == 0

        replies = [curl("http://127.0.0.1:6199/") for _ in range(3)]
        assert [(r.status, r.text) for r in replies] == [
            (200, "Response from BLUE"), (200, "Response from GREEN"), (200, "Response from BLUE")]

        after = curl("http://127.0.0.1:6200/").text
        assert sample(after, "http_requests_total") == 3
        assert sample(after, 'http_request_duration_seconds_bucket{le="0.025"}') == 2
        assert sample(after, 'http_request_duration_seconds_bucket{le="0.25"}') == 3
        assert sample(after, "http_request_duration_seconds_count") == 3
        ex.wait_log(r"Forwarding request #1 to Green")
        ex.wait_log(r"Total Request: 3")
