"""SIGTERM lets in-flight proxied requests finish; idle keep-alive connections close."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from proxy_support import HERE, start_forwarder

RUN_FORWARDER = HERE / "run_forwarder.py"


def test_inflight_request_survives_sigterm(lab):
    port, proc = start_forwarder(lab.address("blue"))
    try:
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        result = {}

        def slow():
            out = subprocess.run(["curl", "-s", "-w", " %{http_code}", f"http://127.0.0.1:{port}/slow?ms=1500"],
                                 capture_output=True, text=True, timeout=20)
            result["out"] = out.stdout

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.4)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # the idle keep-alive connection is closed by the shutdown
        idle.settimeout(3)
        assert idle.recv(10) == b""
        t.join(10)
        assert result["out"] == "Response from BLUE 200"
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


# --- zero-loss handover: a pipelining keep-alive client through SIGTERM and SIGQUIT, under wrk -c64 ---

_BATCH = 4


def _read_response(f) -> tuple[bool, bool]:
    """Read one response from the file ``f``; (complete, says Connection: close)."""
    status = f.readline()
    if not status:
        return False, False
    close = False
    length = 0
    while True:
        line = f.readline()
        if not line:
            return False, False
        if line == b"\r\n":
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    body = f.read(length)
    return len(body) == length, close


class PipeliningClient(threading.Thread):
    """Keep-alive connections, each sending batches of pipelined GETs (one write per
    batch, the next batch once the last one is answered), reconnecting after a
    ``Connection: close``, until no connection can be made. Counts the requests
    sent and those answered."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.sent = 0
        self.answered = 0
        self.closes = 0
        self.stop = threading.Event()
        self.unanswered: list[str] = []

    def run(self) -> None:
        batch = b"".join(b"GET /?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(_BATCH))
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                return  # the listener is gone: the shutdown is over
            with s, s.makefile("rb") as f:
                while not self.stop.is_set():
                    try:
                        s.sendall(batch)
                    except OSError:
                        break  # closed before this batch went out: nothing was sent
                    self.sent += _BATCH
                    got = 0
                    closed = False
                    try:
                        for _ in range(_BATCH):
                            ok, closed = _read_response(f)
                            if not ok:
                                break
                            got += 1
                            if closed:
                                break
                    except OSError:
                        pass
                    self.answered += got
                    if got < _BATCH:
                        self.unanswered.append(f"{_BATCH - got} of a batch (close={closed})")
                    if closed or got < _BATCH:
                        self.closes += closed
                        break


def _under_load(port: int) -> subprocess.Popen:
    """wrk with 64 connections for a few seconds: the load the signal arrives under."""
    return subprocess.Popen(["wrk", "-c64", "-t1", "-d3s", f"http://127.0.0.1:{port}/"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _load_ran(load: subprocess.Popen) -> int:
    """The requests wrk completed (some of its connections are closed by the signal)."""
    out = load.communicate(timeout=30)[0]
    done = int(out.split(" requests in ")[0].split()[-1])
    assert done > 0, out
    return done


def _through_signal(port: int, send_signal) -> PipeliningClient:
    client = PipeliningClient(port)
    client.start()
    deadline = time.monotonic() + 10
    while client.answered < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    send_signal()
    return client


@pytest.mark.parametrize("run", [1, 2, 3])
def test_sigterm_answers_every_request_that_arrived(lab, run):
    port, proc = start_forwarder(lab.address("blue"))
    try:
        load = _under_load(port)
        client = _through_signal(port, lambda: proc.send_signal(signal.SIGTERM))
        assert proc.wait(15) == 0
        _load_ran(load)
        client.join(15)
        assert not client.is_alive()
        assert client.unanswered == [], (client.sent, client.answered)
        assert client.sent == client.answered > 200
        assert client.closes >= 1  # the last answer said Connection: close
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("run", [1, 2, 3])
def test_sigquit_upgrade_answers_every_request_that_arrived(lab, tmp_path, run):
    sock = tmp_path / "upgrade.sock"
    conf = tmp_path / "conf.yaml"
    conf.write_text(f"---\nversion: 1\nupgrade_sock: {sock}\ngrace_period_seconds: 5\n")
    port, old = start_forwarder(lab.address("blue"), "-c", str(conf))
    new = None
    try:
        new = subprocess.Popen([sys.executable, str(RUN_FORWARDER), str(port),
                                "%s:%d" % lab.address("blue"), "-c", str(conf), "-u"])
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "the new process never waited for the sockets"
            time.sleep(0.02)
        load = _under_load(port)
        client = _through_signal(port, lambda: old.send_signal(signal.SIGQUIT))
        assert old.wait(15) == 0
        _load_ran(load)
        # The client goes on against the new process for a while, then stops.
        time.sleep(0.5)
        client.stop.set()
        client.join(15)
        assert client.unanswered == [], (client.sent, client.answered)
        assert client.sent == client.answered > 200
        assert client.closes >= 1  # the old process said Connection: close, then it left
    finally:
        for p in (old, new):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
