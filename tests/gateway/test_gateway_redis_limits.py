"""rate_limit with redis: one count for two gateway instances sharing a real redis-server,
and the documented outage behaviour (fail open by default) when Redis stops."""

from __future__ import annotations

import time
from collections import Counter

from support import free_port

# A window of an hour: the test never sees the window change (they are grid-aligned).
SHARED = """
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters: {blue: {backends: [{address: "{blue}"}]}}
routes:
  - name: shared
    match: {path: {prefix: /open}}
    plugins: {rate_limit: {requests: 10, window: 3600, redis: "{redis}"}}
    proxy: {cluster: blue}
  - name: strict
    match: {path: {prefix: /closed}}
    plugins: {rate_limit: {requests: 1000, window: 3600, redis: "{redis}", on_redis_error: closed}}
    proxy: {cluster: blue}
"""


def test_limit_is_shared_by_two_instances_and_fails_open_without_redis(gateway_run, redis_server):
    a = gateway_run(SHARED, redis=redis_server.url)
    b = gateway_run(SHARED, redis=redis_server.url)
    codes = Counter()
    for i in range(30):
        gw = (a, b)[i % 2]
        status, headers, _ = gw.request(path="/open")
        codes[(gw is a, status)] += 1
        if status == 429:
            assert headers["retry-after"] == "3600"
    assert codes[(True, 200)] + codes[(False, 200)] == 10, codes
    assert codes[(True, 429)] > 0 and codes[(False, 429)] > 0, codes  # both instances refuse
    assert a.request(path="/closed")[0] == 200

    redis_server.stop()
    assert [a.request(path="/open")[0] for _ in range(5)] == [200] * 5  # open: admitted
    assert [b.request(path="/closed")[0] for _ in range(3)] == [429] * 3  # closed: refused
    a.wait_log("admitting requests")
    b.wait_log("rejecting requests")

    redis_server.start()  # same port, empty: counting starts again once Redis answers
    deadline = time.monotonic() + 10
    while "Redis reachable again" not in a.log() and time.monotonic() < deadline:
        a.request(path="/open")  # one call per second probes Redis
        time.sleep(0.1)
    codes = [a.request(path="/open")[0] for _ in range(12)]
    assert codes.count(429) >= 2 and codes[-1] == 429, codes
    assert "Traceback" not in a.log() + b.log()
