"""Graceful shutdown of listening services: stop accepting, drain, and the grace period."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from server_support import APPS, pid_alive, write_conf
from support import REPO


def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def test_sigterm_stops_accepting_and_waits_for_live_connection(procs, tmp_path):
    conf = write_conf(tmp_path / "c.yaml", upgrade_sock=str(tmp_path / "u.sock"))
    p = procs([APPS / "hold_server.py", "-c", conf])
    port = p.port("hold")
    held = _connect(port)
    p.wait_log(r"holding a connection")
    p.signal(signal.SIGTERM)
    p.wait_log(r"SIGTERM received, gracefully exiting")
    time.sleep(0.2)
    # No longer accepting: the listening socket is closed.
    with pytest.raises(ConnectionRefusedError):
        _connect(port)
    # The connection in progress is still served, and then the process exits at once.
    assert p.popen.poll() is None
    held.sendall(b"bye\n")
    assert held.recv(100) == b"done bye\n"
    held.close()
    t0 = time.monotonic()
    assert p.wait(5) == 0
    assert time.monotonic() - t0 < 2
    assert "graceful shutdown complete" in p.log()


def test_grace_period_and_timeout_bound_the_wait(procs, tmp_path):
    conf = write_conf(tmp_path / "c.yaml", upgrade_sock=str(tmp_path / "u.sock"),
                      grace_period_seconds=1, graceful_shutdown_timeout_seconds=1)
    p = procs([APPS / "hold_server.py", "-c", conf])
    port = p.port("hold")
    held = _connect(port)
    p.wait_log(r"holding a connection")
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0
    elapsed = time.monotonic() - t0
    assert 1.8 <= elapsed < 5, elapsed
    log = p.log()
    assert "grace period (1s) over, 1 task(s) still running" in log
    assert "cancelling 1 unfinished task(s): hold connections" in log
    held.close()


def test_run_once_background_service_runs_in_one_worker(procs, tmp_path):
    conf = write_conf(tmp_path / "c.yaml", threads=3, upgrade_sock=str(tmp_path / "u.sock"))
    p = procs([APPS / "hold_server.py", "-c", conf])
    deadline = time.monotonic() + 10
    while len(re.findall(r"everywhere service in pid", p.log())) < 3:
        assert time.monotonic() < deadline, p.log()
        time.sleep(0.05)
    p.wait_log(r"once service in pid")
    time.sleep(0.3)
    log = p.log()
    everywhere = set(re.findall(r"everywhere service in pid (\d+)", log))
    once = re.findall(r"once service in pid (\d+)", log)
    worker0 = re.search(r"worker 0 started \(pid (\d+)\)", log).group(1)
    assert len(everywhere) == 3
    assert once == [worker0]
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0


def test_daemon_with_workers(tmp_path):
    pid_file, log_file = tmp_path / "m.pid", tmp_path / "m.log"
    conf = write_conf(tmp_path / "d.yaml", daemon=True, threads=2, pid_file=str(pid_file),
                      error_log=str(log_file), upgrade_sock=str(tmp_path / "u.sock"))
    env = dict(os.environ, PROPYLON_LOG="info")
    r = subprocess.run([sys.executable, str(APPS / "hold_server.py"), "-c", str(conf)], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    master = int(pid_file.read_text())
    try:
        deadline = time.monotonic() + 5
        while (len(re.findall(r": listening on tcp://[^ ]+ \(hold\)", log_file.read_text())) < 2
               or "master running with 2 workers" not in log_file.read_text()):
            assert time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.05)
        workers = [int(w) for w in re.findall(r"worker \d started \(pid (\d+)\)", log_file.read_text())]
        assert len(workers) == 2 and master not in workers
        os.kill(master, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pid_alive(master) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(master)
        assert not any(pid_alive(w) for w in workers)
        assert "all workers exited" in log_file.read_text()
        assert not pid_file.exists()
    finally:
        if pid_alive(master):
            os.kill(master, signal.SIGKILL)


def _uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch user")
def test_daemon_drops_privileges(tmp_path):
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user")
    pid_file, log_file = tmp_path / "n.pid", tmp_path / "n.log"
    conf = write_conf(tmp_path / "d.yaml", daemon=True, user="nobody", pid_file=str(pid_file),
                      error_log=str(log_file), upgrade_sock=str(tmp_path / "u.sock"))
    env = dict(os.environ, PROPYLON_LOG="info")
    r = subprocess.run([sys.executable, str(APPS / "hold_server.py"), "-c", str(conf)], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    pid = int(pid_file.read_text())
    try:
        assert _uid_of(pid) == nobody.pw_uid
        m = re.search(r": listening on tcp://127\.0\.0\.1:(\d+) \(hold\)", log_file.read_text())
        deadline = time.monotonic() + 5
        while m is None:
            assert time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.05)
            m = re.search(r": listening on tcp://127\.0\.0\.1:(\d+) \(hold\)", log_file.read_text())
        with _connect(int(m.group(1))) as s:
            s.sendall(b"x\n")
            assert s.recv(100) == b"done x\n"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid)
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigusr1_does_not_stop_a_single_process_server(procs, tmp_path):
    # logrotate sends SIGUSR1 to every server it rotates for; one with no access log
    # (threads: 1, so no master to relay it) must keep serving.
    conf = write_conf(tmp_path / "c.yaml")
    p = procs([APPS / "hold_server.py", "-c", conf])
    port = p.port("hold")
    p.signal(signal.SIGUSR1)
    held = _connect(port)
    held.sendall(b"still\n")
    assert held.recv(100) == b"done still\n"
    held.close()
    assert p.popen.poll() is None
