"""threads: N – worker processes, both work_stealing modes, and restarting a dead worker."""

import os
import re
import signal
import time

import pytest

from server_support import APPS, ask, pid_alive, write_conf
from support import wait_port


def _pids_seen(port: int, want: int, tries: int = 300) -> set[int]:
    seen: set[int] = set()
    for _ in range(tries):
        seen.add(int(ask(port)))
        if len(seen) >= want:
            break
    return seen


def _worker_pids(p) -> dict[int, int]:
    """index -> pid of the most recent start of each worker, from the master's log."""
    return {int(i): int(pid) for i, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", p.log())}


def test_lesson_4_two_workers_without_work_stealing(procs):
    p = procs(["examples/04_threading_model.py"])
    wait_port(6144)
    p.wait_log(r"worker 1 started")
    seen = _pids_seen(6144, 2)
    assert len(seen) == 2 and p.pid not in seen
    assert seen == set(_worker_pids(p).values())
    # Both reporters run in both workers, each on its own loop.
    for pid in seen:
        p.wait_log(rf"I am running in worker process {pid}")
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert all(not pid_alive(pid) for pid in seen)


@pytest.mark.parametrize("work_stealing", [True, False])
def test_workers_serve_and_dead_worker_is_restarted(procs, tmp_path, work_stealing):
    conf = write_conf(tmp_path / "w.yaml", threads=2, work_stealing=work_stealing,
                      upgrade_sock=str(tmp_path / "u.sock"), grace_period_seconds=2)
    p = procs([APPS / "pid_server.py", "-c", conf])
    port = p.port()
    p.wait_log(r": listening on .* \(pid\)\n(.|\n)*: listening on .* \(pid\)")  # both workers listen
    first = _pids_seen(port, 2)
    assert len(first) == 2, f"only {first} answered"
    assert p.pid not in first

    victim = sorted(first)[0]
    os.kill(victim, signal.SIGKILL)
    p.wait_log(rf"worker \d \(pid {victim}\) exited unexpectedly \(killed by SIGKILL\); restarting it")
    deadline = time.monotonic() + 5
    while len(_worker_pids(p)) < 2 or victim in _worker_pids(p).values():
        assert time.monotonic() < deadline, p.log()
        time.sleep(0.05)
    current = set(_worker_pids(p).values())
    assert victim not in current
    # The replacement serves too, and nobody answers with the dead pid.
    again = _pids_seen(port, 2)
    assert again == current

    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert "all workers exited" in p.log()
    assert all(not pid_alive(pid) for pid in current)


def test_sigint_stops_workers_at_once(procs, tmp_path):
    conf = write_conf(tmp_path / "w.yaml", threads=2, upgrade_sock=str(tmp_path / "u.sock"))
    p = procs([APPS / "pid_server.py", "-c", conf])
    port = p.port()
    pids = _pids_seen(port, 2)
    t0 = time.monotonic()
    p.signal(signal.SIGINT)
    assert p.wait(5) == 0
    assert time.monotonic() - t0 < 2
    assert all(not pid_alive(pid) for pid in pids)
