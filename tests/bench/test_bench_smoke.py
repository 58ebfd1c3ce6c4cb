"""Smoke tests of the benchmark harness (not of anyone's speed).

They run ``python -m bench`` for real (nginx backend, nginx proxy, wrk over loopback)
with one-second runs and two connections, and check what it reports and that it
leaves no process behind, also when interrupted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")) or not shutil.which("wrk"),
    reason="needs nginx and wrk (apt-get install nginx wrk)",
)


def _bench(args: list[str], tmp_path: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _procs_mentioning(text: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmd:
            found.append(f"{entry}: {cmd}")
    return found


@pytest.mark.timeout(60)
def test_nginx_rows_are_measured_and_the_table_parses(tmp_path: Path) -> None:
    out_json = tmp_path / "out.json"
    proc = _bench(["--only", "backend,nginx", "--duration", "1", "--warmup", "0",
                   "--connections", "2", "--json", str(out_json)], tmp_path)
    stdout, stderr = proc.communicate(timeout=50)
    assert proc.returncode == 0, stderr

    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^(backend|nginx)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)", line)
        if m:
            rows[m.group(1)] = m.groups()
    assert set(rows) == {"backend", "nginx"}, stdout
    for name, (_, rps, p50, p99, errors) in rows.items():
        assert int(rps) > 0, (name, stdout)
        assert re.fullmatch(r"[0-9.]+(us|ms)", p50) and re.fullmatch(r"[0-9.]+(us|ms)", p99)
        assert errors == "0", (name, stdout)
    assert "command: python -m bench --only backend,nginx" in stdout
    assert re.search(r"^machine: nproc \d+, .*nginx \S+, wrk \S+", stdout, re.M), stdout

    report = json.loads(out_json.read_text())
    by_name = {r["name"]: r for r in report["results"]}
    assert by_name["nginx"]["status"] == "ok"
    load = by_name["nginx"]["load"]
    assert load["requests_per_sec"] > 0 and load["requests"] > 0 and not load["flagged"]
    assert load["command"][0].endswith("wrk") and "--latency" in load["command"]
    assert report["params"]["connections"] == 2
    # Everything it started is gone, and so is its temporary directory.
    assert _procs_mentioning(str(tmp_path)) == []
    assert not list(tmp_path.glob("propylon-bench-*"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_ctrl_c_or_sigterm_stops_every_server(tmp_path: Path, sig: int, code: int) -> None:
    # A shell starts a background job with Ctrl-C ignored, and a child inherits that;
    # the harness is started with the default, as from a terminal.
    proc = _bench(["--only", "backend,nginx", "--duration", "20", "--warmup", "0",
                   "--connections", "2"], tmp_path,
                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Interrupt during the first (20 s) run, once the backend nginx is up and loaded.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(_procs_mentioning(str(tmp_path))) == 0:
        time.sleep(0.1)
    assert _procs_mentioning(str(tmp_path)), "harness never started nginx"
    time.sleep(0.5)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == code, stderr
    assert _procs_mentioning(str(tmp_path)) == []


@pytest.mark.timeout(30)
def test_unknown_scenario_and_missing_tools_are_usage_errors(tmp_path: Path) -> None:
    proc = _bench(["--only", "nope"], tmp_path)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "unknown scenario(s): nope" in stderr

    # With an empty PATH, wrk and h2load are not found (nginx still is, in /usr/sbin):
    # the harness names what is missing and the apt command, and starts nothing.
    env = dict(os.environ, PATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "nginx,nginx-h2"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 2, done.stderr
    assert "missing: wrk, h2load" in done.stderr
    assert "apt-get install wrk nghttp2-client" in done.stderr
    assert done.stdout == ""


@pytest.mark.timeout(60)
@pytest.mark.skipif(not shutil.which("h2load"), reason="needs h2load (apt-get install nghttp2-client)")
def test_nginx_h2_row_is_measured_with_h2load(tmp_path: Path) -> None:
    out_json = tmp_path / "out.json"
    proc = _bench(["--only", "nginx-h2", "--duration", "1", "--warmup", "0",
                   "--connections", "2", "--h2-streams", "2", "--json", str(out_json)], tmp_path)
    stdout, stderr = proc.communicate(timeout=50)
    assert proc.returncode == 0, stderr
    m = re.search(r"^nginx-h2\s+(\d+)\s+(\S+)\s+(\S+)\s+0\s", stdout, re.M)
    assert m and int(m.group(1)) > 0, stdout
    load = json.loads(out_json.read_text())["results"][0]["load"]
    assert load["command"][0].endswith("h2load") and load["p99_ms"] > 0
    assert _procs_mentioning(str(tmp_path)) == []
