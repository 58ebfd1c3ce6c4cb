"""The gateway file: the models, the shipped schema, includes, and errors named by path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from propylon.gateway.config import GatewayConfigError, load_config, parse_config, schema_text

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "src" / "propylon" / "gateway" / "schema.json"

BASE = {
    "listeners": [{"name": "web", "address": "127.0.0.1:6188"}],
    "clusters": {"app": {"backends": [{"address": "127.0.0.1:18080"}]}},
    "routes": [{"match": {"path": {"prefix": "/"}}, "proxy": {"cluster": "app"}}],
}


def problems(data) -> list[str]:
    with pytest.raises(GatewayConfigError) as info:
        parse_config(data)
    return [str(p) for p in info.value.problems]


def with_route(**route) -> dict:
    return {**BASE, "routes": [BASE["routes"][0], route]}


def test_shipped_schema_is_the_generated_one():
    assert SCHEMA.read_text() == schema_text(), "run: python -m propylon.gateway.config > src/propylon/gateway/schema.json"
    schema = json.loads(SCHEMA.read_text())
    assert schema["additionalProperties"] is False
    assert {"listeners", "routes", "clusters", "server", "metrics"} <= set(schema["properties"])


def test_the_example_config_is_valid():
    conf = load_config(str(REPO / "conf" / "gateway.yaml"))
    assert conf.clusters["city"].backends[0].weight == 3


def test_misspelt_key_names_path_and_suggests():
    route = {"match": {"path": {"prefix": "/x"}}, "proxy": {"cluster": "app"},
             "plugins": {"rate_limit": {"requests": 5, "per": {"ip_adress": True}}}}
    assert problems(with_route(**route)) == [
        "routes[1].plugins.rate_limit.per: unknown key 'ip_adress' (did you mean 'ip_address'?)"]


def test_every_error_is_reported_one_per_line():
    data = with_route(match={"path": {"regex": "/a/(?P<x>[0-9+)"}}, proxy={"cluster": "ap"}, priorty=2)
    data["clusters"] = {"app": {"backends": [{"address": "127.0.0.1:18080", "weight": "heavy"}]}}
    got = problems(data)
    assert "routes[1].match.path.regex: invalid regular expression '/a/(?P<x>[0-9+)': " \
           "unterminated character set at position 9" in got
    assert "routes[1]: unknown key 'priorty' (did you mean 'priority'?)" in got
    assert any(p.startswith("clusters.app.backends[0].weight: input should be a valid integer") for p in got)
    assert "routes[1].proxy.cluster: unknown cluster 'ap' (did you mean 'app'?)" in got
    assert len(got) == 4


def test_cross_references_named_by_path():
    data = with_route(match={"hosts": ["bad host"]}, listeners=["webb"], proxy={"cluster": "nope"})
    assert problems(data) == [
        "routes[1].proxy.cluster: unknown cluster 'nope'",
        "routes[1].listeners[0]: unknown listener 'webb' (did you mean 'web'?)",
        "routes[1].match.hosts[0]: invalid host 'bad host' (a name, or '*.' followed by a name)",
    ]


def test_exactly_one_action_and_redirect_placeholders():
    assert problems(with_route(respond={"status": 200}, proxy={"cluster": "app"})) == [
        "routes[1]: a route needs exactly one of 'proxy', 'redirect', 'respond' (found 'proxy', 'respond')"]
    assert problems(with_route(redirect={"location": "/new/{page}"})) == [
        "routes[1].redirect.location: unknown placeholder '{page}' (known: host, path, query)"]


def test_cluster_pool_size_is_a_count_of_idle_connections():
    def with_pool(size):
        return {**BASE, "clusters": {"app": {**BASE["clusters"]["app"], "pool_size": size}}}

    assert parse_config(with_pool(8)).clusters["app"].pool_size == 8
    assert parse_config(with_pool(0)).clusters["app"].pool_size == 0  # keep none idle
    assert problems(with_pool(-1)) == ["clusters.app.pool_size: input should be greater than or equal to 0, got -1"]


def test_access_log_section_is_typed():
    assert problems({**BASE, "access_log": {"format": "xml"}}) == [
        "access_log.format: input should be 'json' or 'combined', got 'xml'"]
    assert problems({**BASE, "access_log": {"format": "combined", "fields": ["status"]}}) == [
        "access_log: 'fields' choose what a json line carries; the combined format is fixed"]
    assert problems({**BASE, "access_log": {"fields": ["status", "pth"]}})[0].startswith("access_log.fields[1]:")
    conf = parse_config({**BASE, "access_log": {"path": "/var/log/gw.log"}})
    assert conf.access_log.chosen_fields()[-1] == "service"


def test_admin_off_loopback_needs_a_token():
    assert problems({**BASE, "admin": {"address": "0.0.0.0:9180"}}) == [
        "admin: a 'token' is required to serve the admin API on 0.0.0.0:9180 (not a loopback address)"]
    assert parse_config({**BASE, "admin": {"address": "0.0.0.0:9180", "token": "x" * 16}}).admin.token
    assert parse_config({**BASE, "admin": {"address": "[::1]:9180"}}).admin.token is None


def test_server_section_is_a_server_conf():
    assert problems({**BASE, "server": {"thread": 2}}) == ["server.thread: unknown key (did you mean 'threads'?)"]


def test_include_merges_lists_and_refuses_duplicate_clusters(tmp_path):
    (tmp_path / "clusters.yaml").write_text(
        "clusters:\n  more: {backends: [{address: '127.0.0.1:18081'}]}\n"
        "routes:\n  - {match: {path: {exact: /m}}, proxy: {cluster: more}}\n")
    main = tmp_path / "main.yaml"
    main.write_text(json.dumps({**BASE, "include": ["clusters.yaml"]}))
    conf = load_config(str(main))
    assert set(conf.clusters) == {"app", "more"}
    assert [r.proxy.cluster for r in conf.routes] == ["more", "app"]
    (tmp_path / "dup.yaml").write_text("clusters:\n  app: {backends: [{address: '127.0.0.1:1'}]}\n")
    main.write_text(json.dumps({**BASE, "include": ["dup.yaml"]}))
    with pytest.raises(GatewayConfigError) as info:
        load_config(str(main))
    assert [str(p) for p in info.value.problems] == ["clusters.app: defined in more than one file"]


def test_yaml_syntax_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("listeners: [\n")
    with pytest.raises(GatewayConfigError) as info:
        load_config(str(bad))
    (line,) = str(info.value).splitlines()
    assert "invalid YAML at line" in line


def test_docs_reference_is_the_generated_one():
    from propylon.gateway.config.reference import reference_markdown

    text = (REPO / "docs" / "gateway.md").read_text()
    generated = text.split("<!-- reference:begin -->\n", 1)[1].split("<!-- reference:end -->", 1)[0]
    assert generated == reference_markdown(), "regenerate with: python -m propylon.gateway.config --reference"


def test_header_names_values_and_methods_are_checked():
    got = problems(with_route(match={"methods": ["get"]},
                              respond={"status": 200, "headers": {"X-A": "a\r\nEvil: 1", "bad name": "x"}}))
    assert got == [
        "routes[1].match.methods[0]: expected an upper-case method such as GET, got 'get'",
        "routes[1].respond.headers.X-A: a header value cannot contain CR, LF or NUL, got 'a\\r\\nEvil: 1'",
        "routes[1].respond.headers: key 'bad name': not a valid header name",
    ]


def test_metrics_trace_settings_are_checked():
    ok = parse_config({**BASE, "metrics": {"address": "127.0.0.1:9100",
                                           "trace": {"token": "a-long-trace-token"}}})
    assert (ok.metrics.trace.token, ok.metrics.trace.sample, ok.metrics.trace.keep) == ("a-long-trace-token", 0.0, 100)
    assert any(p.startswith("metrics.trace.token: ") and "16" in p for p in problems(
        {**BASE, "metrics": {"address": "127.0.0.1:9100", "trace": {"token": "short"}}}))
    assert any(p.startswith("metrics.trace.sample: ") for p in problems(
        {**BASE, "metrics": {"address": "127.0.0.1:9100", "trace": {"sample": 2}}}))
    assert any("needs a 'token' or a 'sample'" in p for p in problems(
        {**BASE, "metrics": {"address": "127.0.0.1:9100", "trace": {"keep": 10}}}))
