"""Lessons 36 and 37: per-IP rate limits on 6180 (fixed window) and 6181 (previous
window's rate), driven by curl like the lessons' loops."""

import re
import time

from limex_support import BLUE_BODY, curl, hits, retry_if_blue_vanishes, unique_path
from support import running


def _fresh_window() -> None:
    # A Rate's first window starts when the limiter is created, at import. After a
    # quiet second the next request opens a new window, so the burst below starts
    # one and fits in it, as in the lesson.
    time.sleep(1.1)


def _burst(label: str, count: int, attempts: int = 3) -> tuple[str, list]:
    """``count`` back-to-back curls to a new target that all fall inside one window;
    returns the target and the replies.

    On a busy machine a burst may take longer than the window; such a burst
    proves nothing, so wait for both windows to expire and try again.
    """
    for _ in range(attempts):
        _fresh_window()
        target = unique_path(label)
        started = time.monotonic()
        replies = [curl(f"http://127.0.0.1:6180{target}") for _ in range(count)]
        if time.monotonic() - started < 0.9:
            return target, replies
        time.sleep(1.0)  # with _fresh_window: two idle windows, counts forgotten
    raise AssertionError(f"{count} requests never fitted in one second")


@retry_if_blue_vanishes
def test_fixed_window_admits_five_then_429_without_choosing_an_upstream(lab):
    with running("examples/36_basic_rate_limit.py", 6180) as ex:
        target, replies = _burst("limex36", 10)
        assert [r.status for r in replies] == [200] * 5 + [429] * 5
        assert all(r.body == BLUE_BODY for r in replies[:5])
        assert all(r.body == "" for r in replies[5:])
        # Rejected requests never reached upstream_peer, nor blue.
        ex.wait_log(r"Rate Limit Exceeded for 127\.0\.0\.1: 10 req/s")
        assert hits(target) == 5
        log = ex.log()
        first_rejection = log.rindex("Rate Limit Exceeded for 127.0.0.1: 6 req/s")
        assert log[:first_rejection].count("Selected upstream") >= 5
        last = log[first_rejection:]
        assert "Selected upstream" not in last
        rejected = re.findall(r"Rate Limit Exceeded for 127\.0\.0\.1: (\d+) req/s", last)
        assert rejected == ["6", "7", "8", "9", "10"]


@retry_if_blue_vanishes
def test_fixed_window_admits_again_in_the_next_window(lab):
    with running("examples/36_basic_rate_limit.py", 6180):
        target, first = _burst("limex36-next", 7)
        time.sleep(1.0)  # past the window: the next request opens a new one
        second = [curl(f"http://127.0.0.1:6180{target}") for _ in range(3)]
        assert [r.status for r in first] == [200] * 5 + [429] * 2
        assert [r.status for r in second] == [200] * 3
        assert hits(target) == 8


def _paced(url: str, count: int, pause: float) -> list[tuple[float, int]]:
    """``count`` requests, ``pause`` seconds of sleep after each answer (the lesson's
    ``curl; sleep`` loop); returns (send time, status) pairs."""
    out = []
    for _ in range(count):
        sent = time.monotonic()
        out.append((sent, curl(url).status))
        time.sleep(pause)
    return out


def _scheduled(url: str, count: int, period: float) -> list[tuple[float, int]]:
    """``count`` requests started every ``period`` seconds (one curl at a time)."""
    out = []
    t0 = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, t0 + i * period - time.monotonic()))
        sent = time.monotonic()
        out.append((sent, curl(url).status))
    return out


@retry_if_blue_vanishes
def test_previous_window_rate_passes_five_per_second_and_blocks_faster_clients(lab):
    with running("examples/37_sliding_window.py", 6181) as ex:
        _fresh_window()
        url = "http://127.0.0.1:6181" + unique_path("limex37")

        # Test A: a pause of 0.20 s after each answer is at most 5 requests per
        # window, so the previous window's rate never goes over 5.0.
        steady = _paced(url, 15, 0.20)
        assert [s for _, s in steady] == [200] * 15
        assert ex.count("Rate Limit Exceeded") == 0

        # Test B: a request every 0.15 s (~6.7 req/s). The first window passes;
        # once it is the previous window its rate (~7/s) is over the limit, and the
        # rejected requests keep the next windows over it too. A busy machine may
        # not keep the pace (fewer than 6 sends in the first second): then the run
        # proves nothing and is repeated after two quiet windows.
        for _ in range(3):
            time.sleep(2.1)  # two quiet windows: both counts are forgotten
            start = len(ex.log())
            fast = _scheduled(url, 15, 0.15)
            in_first_second = sum(1 for t, _ in fast if t - fast[0][0] < 1.0)
            if in_first_second >= 6:
                break
        statuses = [s for _, s in fast]
        assert 429 in statuses, statuses
        admitted = statuses.index(429)
        assert statuses == [200] * admitted + [429] * (15 - admitted), statuses
        assert abs(admitted - in_first_second) <= 1, (statuses, in_first_second)
        assert 6 <= admitted <= 8, statuses
        pattern = r"Rate Limit Exceeded for 127\.0\.0\.1: ([\d.]+) req/s \(Limit: 5\.0\)"
        rates = [float(r) for r in re.findall(pattern, ex.log()[start:])]
        assert len(rates) == 15 - admitted
        assert all(r > 5.0 for r in rates)
        assert rates[0] == float(admitted)  # the lesson's "7.00 req/s"
