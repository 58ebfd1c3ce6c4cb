"""Traffic plugins through a running gateway on the lab: canary splits."""

from __future__ import annotations

from collections import Counter

import pytest

from propylon.gateway.config import GatewayConfigError, parse_config

BLUE = b"Response from BLUE"
GREEN = b"Response from GREEN"

SPLIT = """
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters:
  stable: {backends: [{address: "{blue}"}]}
  canary: {backends: [{address: "{green}"}]}
routes:
  - match: {path: {prefix: /random}}
    plugins: {traffic_split: {cluster: canary, percent: 10}}
    proxy: {cluster: stable}
  - match: {path: {prefix: /sticky}}
    plugins: {traffic_split: {cluster: canary, percent: 30, sticky_on: "header:X-User"}}
    proxy: {cluster: stable}
"""


def test_canary_gets_its_share_of_2000_requests(gateway_run):
    gw = gateway_run(SPLIT)
    answers = gw.request_many([("/random", {})] * 2000)
    bodies = Counter(body for status, _, body in answers if status == 200)
    assert sum(bodies.values()) == 2000, bodies
    share = bodies[GREEN] / 2000
    print(f"canary share over 2000 requests: {share:.2%} (green {bodies[GREEN]}, blue {bodies[BLUE]})")
    assert 0.07 <= share <= 0.13, bodies


def test_sticky_split_sends_one_key_always_the_same_way(gateway_run):
    gw = gateway_run(SPLIT)
    users = [f"user-{i}" for i in range(300)]
    first = {u: b for u, (_, _, b) in zip(users, gw.request_many([("/sticky", {"X-User": u}) for u in users]))}
    for _ in range(2):
        again = gw.request_many([("/sticky", {"X-User": u}) for u in users])
        assert {u: b for u, (_, _, b) in zip(users, again)} == first
    canary = sum(1 for b in first.values() if b == GREEN)
    assert set(first.values()) == {BLUE, GREEN}
    assert 0.2 <= canary / len(users) <= 0.4, canary
    # Without the key a request is split at random: both ways are seen.
    assert {b for _, _, b in gw.request_many([("/sticky", {})] * 60)} == {BLUE, GREEN}


BASE = {
    "listeners": [{"name": "web", "address": "127.0.0.1:6188"}],
    "clusters": {"app": {"backends": [{"address": "127.0.0.1:18080"}]}},
}


def problems(route: dict) -> list[str]:
    with pytest.raises(GatewayConfigError) as info:
        parse_config({**BASE, "routes": [route]})
    return [str(p) for p in info.value.problems]


def test_split_config_errors_named_by_path():
    assert problems({"proxy": {"cluster": "app"}, "plugins": {"traffic_split": {"cluster": "ap", "percent": 5}}}) == [
        "routes[0].plugins.traffic_split.cluster: unknown cluster 'ap' (did you mean 'app'?)"]
    assert problems({"respond": {"status": 200}, "plugins": {"traffic_split": {"cluster": "app", "percent": 5}}}) == [
        "routes[0].plugins.traffic_split: only a route that proxies to a cluster can use it"]
    got = problems({"proxy": {"cluster": "app"},
                    "plugins": {"traffic_split": {"cluster": "app", "percent": 101, "sticky_on": "ip"}}})
    assert got[0].startswith("routes[0].plugins.traffic_split.percent:") and len(got) == 2, got
