"""The compiled access-log batch writer (``JsonBatch``) against the line maker it
stands in for (``JsonLines``): the same bytes for random records, whatever their
fields hold. Records are made directly, without a proxy: this is the formatter alone
(the tests beside it run the access log end to end)."""

from __future__ import annotations

import json
import random

import pytest

from propylon.errors import Error, ErrorType
from propylon.metrics.access_log import FIELDS
from propylon.metrics.record import JsonLines, RequestRecord, UpstreamStats
from propylon.protocols.http.header import HeaderMap, RequestHeader

json_batch = pytest.importorskip("propylon.metrics.json_batch", reason="the compiled build's module")

_ODD = [b'"', b"\\", b"\x00", b"\x1f", b"\x7f", b"\x80", b"\xe9", b"\xff", b"?", b" ", b"\t", b"%22"]


def _text(rng: random.Random, n: int) -> bytes:
    out = []
    for _ in range(rng.randrange(n)):
        out.append(rng.choice(_ODD) if rng.random() < 0.1 else bytes([rng.randrange(0x21, 0x7f)]))
    return b"".join(out)


def _record(rng: random.Random, stats: list) -> RequestRecord:
    method = rng.choice([b"GET", b"POST", b"HEAD", b"PURGE", b"M-SEARCH", b"GE\"T", b"\xe9T"])
    path = b"/" + _text(rng, 40)
    fields = []
    for _ in range(rng.randrange(4)):
        name = rng.choice([b"user-agent", b"referer", b"accept", b"x-request-id"])
        fields.append((name, name.title(), _text(rng, 30)))
    r = RequestRecord.__new__(RequestRecord)
    r.req = RequestHeader(method, path, (1, 1), HeaderMap(fields))
    r.client_addr = rng.choice([None, ("127.0.0.1", 5000), ("::1", 6000), ("10.1.2.3", 1),
                                "/run/a \"quoted\"\n.sock"])
    r.start = rng.uniform(0, 1e6)
    r.end = r.start + rng.choice([0.0, 1e-7, 4.9999e-7, 5e-7, 0.0123456, 0.9999996, 999.9999996, 1000.5,
                                  123456.789, 5e7, -0.25, -3e-9, rng.uniform(0, 3)])
    r.status = rng.choice([0, 101, 200, 204, 404, 502, 999, 1000, 12345])
    r.sent = rng.choice([0, 1, 9, 10, 1 << 40, rng.randrange(1 << 20)])
    r.received = rng.choice([0, 7, rng.randrange(1 << 30)])
    r.attempts = rng.choice([0, 1, 2, 17])
    r.upstream_time = rng.choice([0.0, 0.001, 2.5, rng.uniform(0, 0.1)])
    r.stats = rng.choice(stats)
    r.error = rng.choice([None, Error.explain(ErrorType.CONNECT_REFUSED, 'peer "x" \\ refused\n'),
                          ValueError("caf\u00e9 \ud800 tab\t")])
    r.request_id = rng.choice([None, b"0123456789abcdef0123456789abcdef", _text(rng, 20), "gw-\u00e9-7", 42])
    r.service = rng.choice(["proxy", "api", 'we"ird\\svc', "caf\u00e9"])
    return r


@pytest.mark.parametrize("seed", range(6))
def test_the_same_bytes_as_the_line_maker(seed):
    rng = random.Random(seed)
    stats = [None, UpstreamStats("proxy", "127.0.0.1:8000"), UpstreamStats("proxy", "[::1]:80"),
             UpstreamStats("proxy", 'unix:/tmp/"a"\\b')]
    escaped = 0
    for n in range(1, len(FIELDS) + 1):
        fields = tuple(rng.sample(FIELDS, n))
        lines = JsonLines(fields)
        encoder = json_batch.JsonBatch(JsonLines(fields))
        rows = [_record(rng, stats) for _ in range(300)]
        offset = rng.choice([0.0, 1.7e9, 1.7e9 + 0.0005])
        expected = lines.batch(rows, offset)
        for r in rows:
            encoder.add(r, offset)
        got = encoder.take()
        assert got == expected
        escaped += got.count(b'\\"') + got.count(b"\\u00") + got.count(b"\xc3")
        assert got.endswith(b"\n") and got.count(b"\n") == len(rows)
        for line in got.splitlines():
            assert set(json.loads(line)) == set(fields)
    assert escaped > 100  # the records did hold text that needs escaping or is not ASCII


def test_take_empties_the_buffer_and_gives_back_a_grown_one():
    rng = random.Random(3)
    encoder = json_batch.JsonBatch(JsonLines(FIELDS))
    assert encoder.take() == b""
    r = _record(rng, [None])
    r.req = RequestHeader(b"GET", b"/" + b"a" * 100_000, (1, 1), HeaderMap([]))
    for _ in range(30):  # 3 MB of lines: past the buffer's usual size
        encoder.add(r, 0.0)
    assert len(encoder.take()) > 3_000_000
    encoder.add(r, 0.0)
    assert encoder.take() == JsonLines(FIELDS).batch([r], 0.0)
    assert encoder.take() == b""
