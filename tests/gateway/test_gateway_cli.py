"""``propylon run -t -c FILE``: the routing table, or one line per problem and status 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "conf" / "gateway.yaml"


def run_t(path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-m", "propylon", "run", "-t", "-c", str(path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_example_config_prints_the_routing_table():
    out = run_t(EXAMPLE)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "listener public (http+h2c://127.0.0.1:6188)"
    assert "  host blue.propylon.test" in lines and "  host *.green.propylon.test" in lines and "  host *" in lines
    any_host = lines[lines.index("  host *") + 1:]
    assert any_host[0].split()[:4] == ["=", "/healthz", "respond", "200"]
    assert "redirect 301 → /guide/{page}{query}" in out.stdout
    assert "proxy → city (weighted: 127.0.0.1:18080 w3, 127.0.0.1:18081 w1), strip /api" in out.stdout
    assert out.stderr.strip() == f"{EXAMPLE}: configuration OK"


@pytest.mark.parametrize("old, new, expected", [
    ("per: {ip_address: true}", "per: {ip_adress: true}",
     "routes[4].plugins.rate_limit.per: unknown key 'ip_adress' (did you mean 'ip_address'?)"),
    ("{type: http, path: /, interval: 1,", "{type: http, path: /, interval: soon,",
     "clusters.city.health_check.interval: input should be a valid number, "
     "unable to parse string as a number, got 'soon'"),
    ("proxy: {cluster: blue}\n\n  - name: green-site", "proxy: {cluster: bleu}\n\n  - name: green-site",
     "routes[2].proxy.cluster: unknown cluster 'bleu' (did you mean 'blue'?)"),
    ('"/docs/(?P<page>[a-z0-9-]+)"', '"/docs/(?P<page>[a-z0-9-+)"',
     "routes[1].match.path.regex: invalid regular expression '/docs/(?P<page>[a-z0-9-+)': "
     "unterminated character set at position 15"),
])
def test_each_kind_of_error_is_one_line_naming_the_path(tmp_path, old, new, expected):
    text = EXAMPLE.read_text()
    assert old in text
    bad = tmp_path / "gateway.yaml"
    bad.write_text(text.replace(old, new, 1))
    out = run_t(bad)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.splitlines() == [f"{bad}: {expected}"]


def test_all_errors_at_once_and_never_a_traceback(tmp_path):
    text = EXAMPLE.read_text()
    text = text.replace("per: {ip_address: true}", "per: {ip_adress: true}")
    text = text.replace("proxy: {cluster: blue}\n\n  - name: green-site", "proxy: {cluster: bleu}\n\n  - name: green-site")
    text = text.replace("weight: 3}", "weight: three}")
    bad = tmp_path / "gateway.yaml"
    bad.write_text(text)
    out = run_t(bad)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.splitlines()) == 3


def test_missing_files_are_named(tmp_path):
    conf = tmp_path / "gateway.yaml"
    conf.write_text("include: [more.yaml]\nlisteners: [{name: web, address: '127.0.0.1:6188'}]\n")
    out = run_t(conf)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"{conf}: include[0]: {tmp_path / 'more.yaml'}: cannot read: No such file or directory"]
    conf.write_text("listeners:\n  - name: tls\n    address: '127.0.0.1:6443'\n    protocol: https\n"
                    f"    tls: {{default: {{cert: {tmp_path}/none.crt, key: {tmp_path}/none.key}}}}\n")
    out = run_t(conf)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"{conf}: listeners[0].tls: TLS certificate file {tmp_path}/none.crt does not exist"]


def test_a_plain_server_file_keeps_its_meaning(tmp_path):
    conf = tmp_path / "server.yaml"
    conf.write_text("threads: 1\n")
    out = run_t(conf)  # a ServerConf file: -t is the server's own test
    assert out.returncode == 0 and "Server Test passed" in out.stderr
