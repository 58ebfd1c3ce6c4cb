"""The harness's readers of wrk and h2load reports, fed the formats those tools print."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.h2load import parse_h2load_output, percentiles_from_log  # noqa: E402
from bench.report import compute_ratios  # noqa: E402
from bench.results import LoadResult, ParseError  # noqa: E402
from bench.runner import ScenarioResult  # noqa: E402
from bench.wrk import parse_wrk_output  # noqa: E402

WRK_CLEAN = """\
Running 10s test @ http://127.0.0.1:40001/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.31ms  426.22us  12.40ms   91.32%
    Req/Sec    49.31k     1.89k   52.10k    73.00%
  Latency Distribution
     50%    1.24ms
     75%    1.39ms
     90%    1.62ms
     99%    2.87ms
  490683 requests in 10.00s, 76.74MB read
Requests/sec:  49063.45
Transfer/sec:      7.67MB
"""

WRK_ERRORS = """\
Running 1m test @ http://127.0.0.1:40002/
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.50us    2.10s    1.00m    99.00%
    Req/Sec     1.20k   300.00     2.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.50ms
     90%    2.00s
     99%    1.00m
  71234 requests in 1.00m, 9.12MB read
  Socket errors: connect 0, read 3, write 0, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:   1187.23
Transfer/sec:    155.60KB
"""

WRK_NOTHING = """\
Running 1s test @ http://127.0.0.1:40003/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 1.00s, 0.00B read
  Socket errors: connect 0, read 0, write 0, timeout 2
Requests/sec:      0.00
Transfer/sec:       0.00B
"""


def test_wrk_clean_run() -> None:
    r = parse_wrk_output(WRK_CLEAN)
    assert r.requests_per_sec == pytest.approx(49063.45)
    assert r.requests == 490683 and r.duration_s == pytest.approx(10.0)
    assert r.p50_ms == pytest.approx(1.24) and r.p99_ms == pytest.approx(2.87)
    assert r.error_count == 0 and not r.flagged


def test_wrk_units_and_errors() -> None:
    r = parse_wrk_output(WRK_ERRORS)
    assert r.p50_ms == pytest.approx(0.812)
    assert r.p99_ms == pytest.approx(60_000.0)  # "1.00m" is one minute
    assert r.duration_s == pytest.approx(60.0)
    assert r.socket_errors == {"connect": 0, "read": 3, "write": 0, "timeout": 7}
    assert r.non_2xx == 12 and r.error_count == 22 and r.flagged


def test_wrk_run_with_no_completed_request_is_flagged() -> None:
    r = parse_wrk_output(WRK_NOTHING)
    assert r.requests == 0 and r.requests_per_sec == 0.0 and r.flagged


def test_wrk_output_without_requests_per_sec_is_refused() -> None:
    with pytest.raises(ParseError):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


H2LOAD = """\
starting benchmark...
spawning thread #0: 64 total client(s). Timing-based test with 2s of warm-up time and 10s of main duration for measurements.
Warm-up started for thread #0.
progress: 10% of clients started
TLS Protocol: TLSv1.3
Cipher: TLS_AES_256_GCM_SHA384
Server Temp Key: X25519 253 bits
Application protocol: h2
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.

finished in 10.00s, 45906.40 req/s, 1.62MB/s
requests: 459064 total, 459128 started, 459064 done, 459060 succeeded, 4 failed, 1 errored, 2 timeout
status codes: 459060 2xx, 0 3xx, 3 4xx, 1 5xx
traffic: 16.22MB (17006912) total, 1.31MB (1377192) headers (space savings 93.05%), 2.19MB (2295320) data
                     min         max         mean         sd        +/- sd
time for request:      218us     15.90ms      1.38ms       574us    83.60%
"""


def test_h2load_summary_and_log_percentiles(tmp_path: Path) -> None:
    log = tmp_path / "h2.log"
    # 100 requests taking 1..100 ms: nearest-rank p50 = 50 ms, p99 = 99 ms.
    log.write_text("".join(f"1795304154488696\t200\t{i * 1000}\n" for i in range(100, 0, -1)))
    r = parse_h2load_output(H2LOAD, log)
    assert r.requests_per_sec == pytest.approx(45906.40) and r.duration_s == pytest.approx(10.0)
    assert r.requests == 459060
    assert r.socket_errors == {"failed": 1, "errored": 1, "timeout": 2}
    assert r.non_2xx == 4 and r.flagged
    assert (r.p50_ms, r.p99_ms) == (50.0, 99.0)
    assert percentiles_from_log(tmp_path / "absent.log") == [None, None]


def test_h2load_fallback_to_http1_is_refused() -> None:
    with pytest.raises(ParseError, match="not h2"):
        parse_h2load_output(H2LOAD.replace("Application protocol: h2", "Application protocol: http/1.1"))


def _row(name: str, group: str, role: str, rps: float, p99: float | None) -> ScenarioResult:
    load = LoadResult(requests=int(rps), duration_s=1.0, requests_per_sec=rps, p50_ms=None, p99_ms=p99)
    return ScenarioResult(name, group, role, "ok", load=load)


def test_ratios_compare_each_propylon_row_with_its_group_reference() -> None:
    results = [
        _row("backend", "http1", "baseline", 100_000, 0.5),
        _row("nginx", "http1", "reference", 50_000, 2.0),
        _row("propylon", "http1", "propylon", 20_000, 5.0),
        _row("propylon-h2", "h2", "propylon", 9_000, 3.0),  # no h2 reference measured
        ScenarioResult("propylon-tls", "tls", "propylon", "unavailable", note="import failed"),
    ]
    ratios = compute_ratios(results)
    assert set(ratios) == {"propylon"}
    assert ratios["propylon"].reference == "nginx"
    assert ratios["propylon"].rps == pytest.approx(0.4) and ratios["propylon"].p99 == pytest.approx(2.5)
    from bench.report import render
    from bench.runner import BenchParams

    text = render(results, command="python -m bench", machine={"nproc": "2"}, params=BenchParams())
    assert "propylon vs nginx: req/s 0.40x, p99 2.50x" in text
    assert "propylon-tls: not available (import failed)" in text
    assert "propylon-h2: FLAGGED" not in text
