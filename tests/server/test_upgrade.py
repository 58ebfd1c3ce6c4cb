"""Graceful upgrade: SIGQUIT hands the listening sockets to a new `-u` process, losing nothing."""

import os
import signal
import socket
import threading
import time

import pytest

from server_support import APPS, ask, pid_alive, write_conf


class ClientLoop(threading.Thread):
    """Opens connections back to back and records who answered, and every failure."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.answers: list[int] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data = ask(self.port, timeout=5)
                self.answers.append(int(data))
            except (OSError, ValueError) as e:
                self.failures.append(repr(e))


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces; the fields after its closing paren do not.
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _wait_file(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("threads, work_stealing", [(1, True), (2, True), (2, False)])
def test_upgrade_loses_no_connection(procs, tmp_path, threads, work_stealing):
    sock_path = str(tmp_path / "upgrade.sock")
    conf = write_conf(tmp_path / "u.yaml", threads=threads, work_stealing=work_stealing,
                      upgrade_sock=sock_path, grace_period_seconds=5)
    uds = str(tmp_path / "pid.sock")
    env = {"PID_SERVER_UDS": uds}
    old = procs([APPS / "pid_server.py", "-c", conf], env=env, name="old")
    port = old.port()
    client = ClientLoop(port)
    client.start()
    try:
        while len(client.answers) < 20:
            assert not client.failures, client.failures
            time.sleep(0.01)
        old_pids = set(client.answers)

        new = procs([APPS / "pid_server.py", "-c", conf, "-u"], env=env, name="new")
        _wait_file(sock_path)
        before = len(client.answers)
        old.signal(signal.SIGQUIT)
        assert old.wait(10) == 0
        # One TCP socket per worker without work stealing, plus the Unix socket.
        handed = threads + 1 if not work_stealing else 2
        assert f"handed {handed} listening socket(s)" in old.log()
        # Keep going until the new process has clearly taken over.
        deadline = time.monotonic() + 5
        while len(client.answers) < before + 100 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        client.stop.set()
        client.join(10)

    assert client.failures == [], client.failures[:5]
    assert f"received {handed} listening socket(s)" in new.log()
    new_pids = set(client.answers[-20:])
    assert new_pids.isdisjoint(old_pids)
    if threads == 1:
        assert new_pids == {new.pid}
    else:
        assert new.pid not in new_pids and len(new_pids) >= 1
    # The Unix endpoint moved over too.
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(3)
        s.connect(uds)
        answer = int(s.recv(100))
    # Any worker of the new process may answer it, even one that served none of the
    # last TCP requests.
    assert answer == new.pid or _parent_of(answer) == new.pid, (answer, new.pid)
    assert not pid_alive(old.pid)


def test_sigquit_without_new_process_keeps_serving(procs, tmp_path):
    conf = write_conf(tmp_path / "u.yaml", upgrade_sock=str(tmp_path / "none.sock"),
                      upgrade_sock_connect_accept_max_retries=1)
    p = procs([APPS / "pid_server.py", "-c", conf])
    port = p.port()
    p.signal(signal.SIGQUIT)
    p.wait_log(r"graceful upgrade failed, still serving", timeout=10)
    assert int(ask(port)) == p.pid
    p.signal(signal.SIGTERM)
    assert p.wait(5) == 0


def test_upgrade_without_old_process_binds_afresh(procs, tmp_path):
    conf = write_conf(tmp_path / "u.yaml", upgrade_sock=str(tmp_path / "u.sock"),
                      upgrade_sock_connect_accept_max_retries=1)
    p = procs([APPS / "pid_server.py", "-c", conf, "-u"])
    port = p.port(timeout=10)
    assert "binding the listeners afresh" in p.log()
    assert int(ask(port)) == p.pid
