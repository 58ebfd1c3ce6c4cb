"""Lesson 38: at most 2 requests in flight on 6182 (upstream_peer waits 2 s)."""

import socket
import threading
import time

from limex_support import BLUE_BODY, BlueGone, curl, hits, retry_if_blue_vanishes, unique_path
from support import running

URL = "http://127.0.0.1:6182"


def _parallel(url: str, count: int) -> list[tuple[int, float, str]]:
    """``count`` curls started together; (status, seconds taken, body) each."""
    out: list[tuple[int, float, str]] = []
    lock = threading.Lock()

    def one() -> None:
        t0 = time.monotonic()
        try:
            r = curl(url)
            status, body = r.status, r.body
        except BlueGone:
            status, body = 502, ""
        with lock:
            out.append((status, time.monotonic() - t0, body))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    if any(status == 502 for status, _, _ in out):
        raise BlueGone(f"502 among the parallel requests to {url}")
    return out


def _inflight() -> int:
    r = curl(f"{URL}/inflight")
    assert r.status == 200, r
    return int(r.body.split()[1])


def _wait_inflight(value: int, timeout: float = 6.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        now = _inflight()
        if now == value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"in flight stayed at {now}, expected {value}")
        time.sleep(0.1)


@retry_if_blue_vanishes
def test_two_of_five_parallel_requests_pass_and_the_count_returns_to_zero(lab):
    with running("examples/38_inflight_limit.py", 6182) as ex:
        target = unique_path("limex38")
        replies = _parallel(URL + target, 5)
        statuses = sorted(s for s, _, _ in replies)
        assert statuses == [200, 200, 429, 429, 429]
        for status, took, body in replies:
            if status == 200:
                assert took >= 1.9 and body == BLUE_BODY  # waited for the slow backend
            else:
                assert took < 1.5  # refused at once, not queued
        assert hits(target) == 2
        ex.wait_count(r"In-flight Limit Exceeded [345]/2", 3)
        assert _inflight() == 0


def _hang_up_mid_request(path: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", 6182), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: limex\r\n\r\n".encode())
    return s


@retry_if_blue_vanishes
def test_clients_that_hang_up_mid_request_give_their_slots_back(lab):
    with running("examples/38_inflight_limit.py", 6182) as ex:
        target = unique_path("limex38-gone")
        quitters = [_hang_up_mid_request(target) for _ in range(2)]
        _wait_inflight(2, timeout=2)
        # Both slots are taken: a third request is refused.
        assert curl(URL + target).status == 429
        for s in quitters:
            s.close()  # gone while upstream_peer is still waiting
        # The engine notices when it next talks to them; logging() then releases.
        _wait_inflight(0)
        ex.wait_log(r"Request finished \(.*\); in flight: 0")
        replies = _parallel(URL + target, 2)
        assert sorted(s for s, _, _ in replies) == [200, 200]
        assert _inflight() == 0
