"""The ``cache`` plugin against a real ``propylon run -c`` process and the lab's caching
upstream (advanced-http: every answer says how many times its target was fetched, in
``X-Lab-Fetch``), and the admin API's purge."""

from __future__ import annotations

import http.client
import json
import time
import uuid

from gateway_support import wait_until
from support import free_port

CONF = """\
listeners:
  - {name: web, address: "127.0.0.1:{port}"}
admin: {address: "127.0.0.1:{admin}"}
clusters:
  adv: {backends: [{address: "{adv}"}]}
routes:
  - name: cached
    match: {path: {prefix: /}}
    proxy: {cluster: adv}
    plugins:
      cache: {%s}
  - {name: plain, match: {path: {prefix: /plain}}, proxy: {cluster: adv}, rewrite: {strip_prefix: /plain}}
"""


def run(gateway_run, lab, cache: str = "", threads: int = 1):
    host, port = lab.address("advanced-http")
    admin = free_port()
    text = CONF % cache
    if threads > 1:
        text = f"server: {{threads: {threads}}}\n" + text
    gw = gateway_run(text, adv=f"{host}:{port}", admin=admin)
    gw.admin = admin
    gw.tag = uuid.uuid4().hex[:8]  # the lab counts fetches per target for its whole life
    return gw


def target(gw, path: str) -> str:
    """``path`` made this test's own (a query parameter the upstream ignores)."""
    return f"{path}{'&' if '?' in path else '?'}t={gw.tag}"


def get(gw, path: str, headers: dict | None = None) -> tuple[str, int, bytes, float]:
    """The cache status, the upstream's fetch count for the target, the body, the time taken."""
    started = time.monotonic()
    status, h, body = gw.request("GET", target(gw, path), headers=headers)
    took = time.monotonic() - started
    assert status == 200, (status, body)
    return h.get("x-cache-status"), int(h["x-lab-fetch"]), body, took


def purge(gw, document: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.admin, timeout=10)
    try:
        conn.request("POST", "/api/cache/purge", body=json.dumps(document),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_miss_then_hit_origin_and_default_ttl_and_purge(gateway_run, lab):
    gw = run(gateway_run, lab, "ttl: 60")
    assert get(gw, "/long")[:2] == ("MISS", 1)
    assert get(gw, "/long")[:2] == ("HIT", 1)
    # No Cache-Control from the origin: the route's ttl applies.
    assert get(gw, "/cache?cc=")[:2] == ("MISS", 1)
    assert get(gw, "/cache?cc=")[:2] == ("HIT", 1)
    # What the origin refuses is never kept.
    assert get(gw, "/no_store")[:2] == ("BYPASS", 1)
    assert get(gw, "/no_store")[:2] == ("BYPASS", 2)
    # A route without the plugin says nothing and fetches every time.
    assert get(gw, "/plain/file")[0] is None
    host = f"127.0.0.1:{gw.port}"
    status, answer = purge(gw, {"host": host, "path": target(gw, "/long")})
    assert (status, answer["purged"], answer["routes"]) == (200, 1, ["cached"])
    assert get(gw, "/long")[:2] == ("MISS", 2)
    assert get(gw, "/cache?cc=")[:2] == ("HIT", 1)  # only /long went
    status, answer = purge(gw, {"prefix": "/cache"})
    assert status == 200 and answer["purged"] == 1
    assert get(gw, "/cache?cc=")[:2] == ("MISS", 2)
    assert purge(gw, {})[1]["purged"] == 2  # everything: /long and /cache?cc=
    assert get(gw, "/long")[:2] == ("MISS", 3)
    assert purge(gw, {"path": "/long"})[0] == 400
    assert purge(gw, {"route": "plain"})[0] == 404
    assert purge(gw, {"pth": "/"})[0] == 400


def test_stale_while_revalidate_is_served_at_once(gateway_run, lab):
    # The origin says max-age=1 and nothing about SWR: the route's window applies.
    gw = run(gateway_run, lab, "stale_while_revalidate: 30")
    path = "/cache?cc=max-age%3D1&ms=400"
    status, fetch, body, took = get(gw, path)
    assert (status, fetch) == ("MISS", 1) and took >= 0.4
    assert get(gw, path)[:2] == ("HIT", 1)
    time.sleep(1.3)  # stale now, within the window
    status, fetch, body, took = get(gw, path)
    assert (status, fetch) == ("STALE", 1) and took < 0.3, (status, fetch, took)
    # The refresh ran in the background: the next request has the new version, at once.
    status, fetch, _, took = wait_until(lambda: (lambda r: r if r[1] == 2 else None)(get(gw, path)), 3,
                                        "the refreshed entry")
    assert status == "HIT" and took < 0.3


def test_object_size_limit_and_reload_keeps_the_entries(gateway_run, lab):
    gw = run(gateway_run, lab, "max_object_bytes: 30")
    long_body = "/cache?cc=max-age%3D60%2C%20public%2C%20must-revalidate"  # body over 30 bytes
    assert get(gw, long_body)[1] == 1
    assert get(gw, long_body)[:2] == ("MISS", 2)
    assert get(gw, "/short")[:2] == ("MISS", 1)  # "Content for max-age=5 #1": 24 bytes
    assert get(gw, "/short")[:2] == ("HIT", 1)
    # A reload that leaves the cache section alone keeps what is cached.
    text = gw.conf_path.read_text()
    gw.reload(text.replace("prefix: /plain}", "prefix: /other}"), wait_for="version 2 applied")
    assert get(gw, "/short")[:2] == ("HIT", 1)


def test_disk_storage(gateway_run, lab, tmp_path):
    gw = run(gateway_run, lab, f"storage: disk, path: {tmp_path / 'cache'}, max_bytes: 1000000")
    assert get(gw, "/long")[:2] == ("MISS", 1)
    assert get(gw, "/long")[:2] == ("HIT", 1)
    assert any((tmp_path / "cache").rglob("*")), "nothing written under the cache directory"


def test_redis_storage_shared_by_two_workers(gateway_run, lab, redis_server):
    gw = run(gateway_run, lab, f"storage: redis, redis: '{redis_server.url}'", threads=2)
    assert get(gw, "/long")[:2] == ("MISS", 1)
    # Each request on its own connection: whichever worker takes it finds the entry.
    assert [get(gw, "/long")[:2] for _ in range(6)] == [("HIT", 1)] * 6


def test_cache_settings_are_checked():
    from propylon.gateway.config.load import GatewayConfigError, parse_config

    base = {"listeners": [{"name": "web", "address": "127.0.0.1:1"}],
            "clusters": {"a": {"backends": [{"address": "127.0.0.1:2"}]}}}

    def problems(cache: dict) -> list[str]:
        try:
            parse_config({**base, "routes": [{"proxy": {"cluster": "a"}, "plugins": {"cache": cache}}]})
        except GatewayConfigError as e:
            return [str(p) for p in e.problems]
        return []

    assert problems({"storage": "disk"}) == ["routes[0].plugins.cache: disk storage needs 'path' (a directory)"]
    assert problems({"storage": "redis", "redis": "localhost:6379"})[0].startswith(
        "routes[0].plugins.cache.redis:")
    assert problems({"ttl": -1})[0].startswith("routes[0].plugins.cache.ttl:")
    assert problems({"stale_while_revalidate": 10, "max_object_bytes": 1000}) == []
    assert problems({"ttll": 5}) == ["routes[0].plugins.cache: unknown key 'ttll' (did you mean 'ttl'?)"]
