"""Log level from PROPYLON_LOG, the log line format, and how options reach the configuration."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

from propylon.server import Opt, Server, ServerConf

from server_support import APPS, write_conf
from support import REPO, free_port

# Bounds the wait for the server's first answer.
_START_TIMEOUT = 20.0


def _wait_serving(port: int, p: subprocess.Popen) -> None:
    """Wait until the server at ``port`` answers a connection with its pid."""
    deadline = time.monotonic() + _START_TIMEOUT
    while p.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                if s.recv(64).strip().isdigit():
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"pid_server did not answer on port {port} (exit code {p.poll()})")


def _run_briefly(env_log, tmp_path):
    conf = write_conf(tmp_path / "c.yaml", upgrade_sock=str(tmp_path / "u.sock"))
    port = free_port()
    env = dict(os.environ, PID_SERVER_ADDR=f"127.0.0.1:{port}")
    env.pop("PROPYLON_LOG", None)
    if env_log is not None:
        env["PROPYLON_LOG"] = env_log
    p = subprocess.Popen([sys.executable, str(APPS / "pid_server.py"), "-c", str(conf)], cwd=REPO,
                         env=env, stderr=subprocess.PIPE, text=True)
    try:
        # Stopped once it serves (its signal handlers are in place by then), however
        # slowly it starts on a busy machine.
        _wait_serving(port, p)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=5)
    finally:
        p.kill()
        p.wait()
    return p.returncode, err


def test_default_level_is_warning(tmp_path):
    # Only the start and stop lines of each listener show at the default level.
    code, err = _run_briefly(None, tmp_path)
    assert code == 0
    lines = err.splitlines()
    assert [l for l in lines if "INFO" in l and "listening on" not in l] == []
    assert any(re.search(r"INFO  .*: listening on tcp://127\.0\.0\.1:\d+ \(pid\)$", l) for l in lines), err
    assert any(re.search(r"stopped listening on tcp://127\.0\.0\.1:\d+ \(pid\)$", l) for l in lines), err


def test_error_level_hides_listener_lines(tmp_path):
    code, err = _run_briefly("error", tmp_path)
    assert code == 0
    assert "listening on" not in err


def test_info_level_and_format(tmp_path):
    code, err = _run_briefly("info", tmp_path)
    assert code == 0
    line = next(l for l in err.splitlines() if "listening on" in l)
    # time, level, logger[pid]: message
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO  propylon\.services\.listening\[\d+\]: "
                    r"listening on tcp://127\.0\.0\.1:\d+ \(pid\)$", line), line


def test_unknown_level_is_reported(tmp_path):
    code, err = _run_briefly("chatty", tmp_path)
    assert code == 0
    assert "PROPYLON_LOG='chatty' is not a log level; using WARNING" in err


def test_daemon_flag_overrides_file(tmp_path):
    conf = write_conf(tmp_path / "c.yaml", daemon=False, threads=3)
    s = Server(Opt(daemon=True, conf=str(conf)))
    assert s.configuration.daemon is True and s.configuration.threads == 3
    assert Server(Opt(conf=str(conf))).configuration.daemon is False


def test_given_conf_is_used_as_is():
    c = ServerConf(threads=4)
    assert Server(conf=c).configuration is c
    assert Server().configuration == ServerConf()


def test_help_lists_the_flags():
    r = subprocess.run([sys.executable, "examples/00_basic_server.py", "-h"], cwd=REPO,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    for flag in ("--conf", "--daemon", "--upgrade", "--test"):
        assert flag in r.stdout
