"""examples/capstone/README.md, step by step, on conf/gateway.yaml as shipped (the lab's
and free ports put in place of the fixed ones)."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
import time
import urllib.request
from collections import Counter

from gateway_support import wait_until
from support import REPO, free_port, scrape, total

BLUE, GREEN = b"Response from BLUE", b"Response from GREEN"


def test_capstone_walk_through(gateway_run, tmp_path):
    metrics, admin = free_port(), free_port()
    text = ((REPO / "conf" / "gateway.yaml").read_text()
            .replace("127.0.0.1:18080", "{blue}").replace("127.0.0.1:18081", "{green}")
            .replace("127.0.0.1:6188", "127.0.0.1:{port}").replace("127.0.0.1:6192", f"127.0.0.1:{metrics}")
            .replace("127.0.0.1:6191", f"127.0.0.1:{admin}"))
    shutil.copy(REPO / "conf" / "gateway_plugins.py", tmp_path)
    gw = gateway_run(text)

    # 1. weighted load balancing (3:1) with health checks
    answers = Counter(gw.request()[2] for _ in range(400))
    assert set(answers) == {BLUE, GREEN} and 0.68 <= answers[BLUE] / 400 <= 0.82, answers

    # 2. authentication and the rate limit
    assert gw.request(path="/private/x")[0] == 401
    assert gw.request(path="/private/x", headers={"Authorization": "Bearer s3cret-token"})[0] == 200
    basic = "Basic " + base64.b64encode(b"admin:change-me").decode()
    assert gw.request(path="/admin/x", headers={"Authorization": basic})[0] == 200
    out = subprocess.run(["curl", "-s", "-w", "%{http_code}\\n",
                          *["-o", "/dev/null", f"http://127.0.0.1:{gw.port}/api/"] * 150],
                         capture_output=True, text=True, timeout=30)
    codes = Counter(out.stdout.split())
    assert set(codes) == {"200", "429"} and 100 <= codes["200"] <= 130, codes

    # 3. observability: Prometheus, and the dashboard's API
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/", timeout=5) as r:
        assert b"<title>Propylon gateway</title>" in r.read()
    routes = api(admin, "GET", "/api/routes")[1]
    assert {"public-api", "private", "everything-else"} <= {r["route"] for r in routes["routes"]}
    stats = api(admin, "GET", "/api/stats")[1]
    assert stats["routes"]["everything-else"]["requests"] >= 400
    assert stats["routes"]["public-api"]["requests"] == 150
    clusters = {c["name"]: c for c in api(admin, "GET", "/api/clusters")[1]["clusters"]}
    assert [b["ready"] for b in clusters["city"]["backends"]] == [True, True]
    samples = scrape(metrics)
    assert total(samples, "propylon_requests_total", service="everything-else") >= 400
    assert total(samples, "propylon_requests_total", service="public-api", status_class="4xx") >= 20
    logged = wait_until(lambda: (lambda lines: lines if len(lines) >= 553 else None)(
        (tmp_path / "access.log").read_text().splitlines()), 10, "the access log lines")
    by_route = Counter(json.loads(line)["service"] for line in logged)
    assert by_route["public-api"] == 150 and by_route["everything-else"] >= 400, by_route

    # 3b. the cache with stale-while-revalidate (fresh 5 s, then 30 s served stale)
    assert [gw.request(path="/static/a")[1]["x-cache-status"] for _ in range(3)] == ["MISS", "HIT", "HIT"]
    time.sleep(5.3)
    assert gw.request(path="/static/a")[1]["x-cache-status"] == "STALE"  # answered at once; refreshed behind
    assert wait_until(lambda: gw.request(path="/static/a")[1]["x-cache-status"] == "HIT", 5, "the refreshed entry")
    assert api(admin, "POST", "/api/cache/purge", json.dumps({"prefix": "/static/"}), "application/json")[1][
        "purged"] == 1
    assert gw.request(path="/static/a")[1]["x-cache-status"] == "MISS"

    # 4. zero-downtime reconfiguration through the admin API, written back to the file
    import yaml

    document = yaml.safe_load(gw.conf_path.read_text())
    document["routes"][0]["respond"]["body"] = "fine\n"
    status, got = api(admin, "PUT", "/api/config?dry_run=1", json.dumps(document), "application/json")
    assert status == 200 and gw.request(path="/healthz")[2] == b"ok\n"
    status, got = api(admin, "PUT", "/api/config", json.dumps(document), "application/json")
    assert status == 200 and got["version"] == 2
    assert gw.request(path="/healthz")[2] == b"fine\n"
    saved = gw.conf_path.read_text()
    assert "# blue three times for every green" in saved and "# the admin API and the dashboard" in saved
    assert [v["version"] for v in api(admin, "GET", "/api/history")[1]["versions"]] == [2, 1]
    assert api(admin, "POST", "/api/rollback?version=1")[0] == 200
    assert gw.request(path="/healthz")[2] == b"ok\n" and gw.conf_path.read_text() == text.replace(
        "{port}", str(gw.port)).replace("{blue}", document["clusters"]["blue"]["backends"][0]["address"]).replace(
        "{green}", document["clusters"]["green"]["backends"][0]["address"])
    assert api(admin, "POST", "/api/cache/purge")[1]["routes"] == ["static"]
    assert "Traceback" not in gw.log()


def api(port: int, method: str, path: str, body: str | None = None, ctype: str = "text/yaml") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body.encode() if body else None, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()
