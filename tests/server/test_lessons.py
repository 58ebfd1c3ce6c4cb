"""Lessons 0–3 and 5, run as the examples they are: real processes, real sockets."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from server_support import ask, pid_alive, write_conf
from support import REPO, wait_port


def test_echo_server_echoes_and_logs_peer(procs):
    p = procs(["examples/00_basic_server.py"])
    wait_port(6142)
    with socket.create_connection(("127.0.0.1", 6142), timeout=3) as s:
        local = s.getsockname()
        s.sendall(b"Hello Propylon\n")
        got = b""
        while len(got) < 15:
            got += s.recv(100)
        assert got == b"Hello Propylon\n"
        big = bytes(range(256)) * 2000  # 512 KB: exercises back-pressure both ways
        s.sendall(big)
        got = b""
        while len(got) < len(big):
            got += s.recv(65536)
        assert got == big
    p.wait_log(rf"New connection from: \('127\.0\.0\.1', {local[1]}\)")
    p.wait_log("Client closed connection")


def _run(args, **kw):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=20, env=kw.get("env"))


def test_configuration_from_yaml_is_shown(procs):
    p = procs(["examples/01_configuration.py", "-c", "conf/01_config.yaml"])
    p.wait_log(r"  threads: 2\n")
    p.wait_log(r"  pid_file: /tmp/propylon_lesson_01\.pid\n")
    p.wait_log(r"  error_log: /tmp/propylon_error\.log\n")


def test_configuration_defaults_are_shown(procs):
    p = procs(["examples/01_configuration.py"])
    p.wait_log(r"  threads: 1\n")
    p.wait_log(r"  pid_file: /tmp/propylon\.pid\n")
    p.wait_log(r"  work_stealing: true\n")


def test_typo_in_config_is_one_line_and_exit_1(tmp_path):
    bad = write_conf(tmp_path / "typo.yaml", threads=2, pid_fle="/tmp/x.pid")
    r = _run(["examples/01_configuration.py", "-c", str(bad)])
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines == [f"error: {bad}: field 'pid_fle': unknown key (did you mean 'pid_file'?)"]


def test_missing_config_file_exit_1(tmp_path):
    r = _run(["examples/01_configuration.py", "-c", str(tmp_path / "absent.yaml")])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "absent.yaml: cannot read configuration file" in r.stderr


def test_test_flag_validates_and_exits():
    r = _run(["examples/01_configuration.py", "-t", "-c", "conf/01_config.yaml"])
    assert r.returncode == 0, r.stderr
    assert "threads: 2" in r.stderr
    assert "Server Test passed" in r.stderr


def test_test_flag_fails_on_bad_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("threads: -3\n")
    r = _run(["examples/01_configuration.py", "-t", "-c", str(bad)])
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert f"{bad}: field 'threads': must be at least 1" in r.stderr


def test_daemon_mode(tmp_path):
    pid_file, log_file = tmp_path / "d.pid", tmp_path / "d.log"
    conf = write_conf(tmp_path / "daemon.yaml", daemon=True, pid_file=str(pid_file),
                      error_log=str(log_file), upgrade_sock=str(tmp_path / "u.sock"))
    pid_file.write_text("12345\n")  # left by an earlier run: kept as .old
    env = dict(os.environ, PROPYLON_LOG="info")
    started = time.monotonic()
    r = _run(["examples/02_daemon_mode.py", "-c", str(conf)], env=env)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 10
    assert "Preparing to daemonize" in r.stdout
    pid = int(pid_file.read_text())
    assert (tmp_path / "d.pid.old").read_text() == "12345\n"
    try:
        assert pid_alive(pid)
        deadline = time.monotonic() + 5
        while "Beep" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert re.search(rf"Beep\.\.\. \(PID: {pid}\)", log_file.read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid)
        log = log_file.read_text()
        assert "SIGTERM received, gracefully exiting" in log
        assert "Shutdown signal received. Stopping heartbeat." in log
        assert "graceful shutdown complete" in log
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_shipped_daemon_config_is_daemon_mode():
    r = _run(["examples/02_daemon_mode.py", "-t", "-c", "conf/02_daemon.yaml"])
    assert r.returncode == 0, r.stderr
    assert "daemon: true" in r.stderr and "pid_file: /tmp/propylon_02.pid" in r.stderr


def test_daemon_reports_bind_error_to_starter(tmp_path, procs):
    # Lesson 0 as a daemon, while 6142 is taken: the starter prints why and exits 1.
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        blocker.bind(("127.0.0.1", 6142))
    except OSError:
        blocker.close()
        pytest.skip("port 6142 is in use by something else")
    blocker.listen()
    try:
        conf = write_conf(tmp_path / "d.yaml", daemon=True, pid_file=str(tmp_path / "p.pid"),
                          error_log=str(tmp_path / "e.log"))
        r = _run(["examples/00_basic_server.py", "-c", str(conf)])
        assert r.returncode == 1
        assert "cannot listen on 127.0.0.1:6142" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "p.pid").exists()
    finally:
        blocker.close()


BATCH_ENV = {"BATCH_JOB_SECONDS": "30", "BATCH_WRAPUP_SECONDS": "1.0"}


def test_graceful_shutdown_finishes_job(procs):
    p = procs(["examples/03_graceful_shutdown.py"], env=BATCH_ENV)
    p.wait_log(r"Starting Job #1")
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0
    elapsed = time.monotonic() - t0
    log = p.log()
    assert "SIGTERM received, gracefully exiting" in log
    order = [log.index(s) for s in ("Finishing Job #1 before exiting", "Job #1 completed gracefully",
                                    "BatchJob Service has stopped cleanly", "graceful shutdown complete")]
    assert order == sorted(order)
    # It waited for the 1 s wrap-up, and returned as soon as it was done.
    assert 0.9 <= elapsed < 5


def test_sigint_exits_at_once(procs):
    p = procs(["examples/03_graceful_shutdown.py"], env=BATCH_ENV)
    p.wait_log(r"Starting Job #1")
    t0 = time.monotonic()
    p.signal(signal.SIGINT)
    assert p.wait(5) == 0
    assert time.monotonic() - t0 < 0.9
    log = p.log()
    assert "SIGINT received, exiting" in log
    assert "Finishing Job" not in log


def test_background_service_shares_state(procs):
    p = procs(["examples/05_background_services.py"])
    wait_port(6145)
    p.wait_log(r"Exporter: Service started")
    # wait_port made one connection already.
    # The app answers without reading, so send nothing: closing a socket with
    # unread input makes the kernel reset the connection.
    first = ask(6145)
    second = ask(6145)
    n1 = int(re.search(rb"visitor #(\d+)", first).group(1))
    assert second == f"Hello! You are visitor #{n1 + 1}\n".encode()
    start = len(p.log())
    p.wait_log(rf"Exporter: Current Total Connections: {n1 + 1}", timeout=5, start=start)
    p.signal(signal.SIGTERM)
    assert p.wait(5) == 0
    assert "Exporter: Shutdown requested." in p.log()
