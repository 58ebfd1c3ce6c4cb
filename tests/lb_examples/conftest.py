"""The lab for the load-balancing example tests, on its fixed ports (the examples
hard-code blue 127.0.0.1:18080 and green 127.0.0.1:18081).

Before every test, ``lab`` looks for a lab this test process already runs on the
fixed ports (another test directory's session fixture); otherwise it has blue
and green run by a lab of its own, except that a member whose port another
process serves is used as it is (a port held by something that does not answer
is waited for; a member that went away is started again). A lab started here
is closed as soon as the last test of this directory is done, so test
directories that run later can take the ports. ``lab_chaos`` needs members it
can stop and freeze, so it skips when one is served by another process, and
restores blue and green before and after each test.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

import pytest

from propylon.lab import DEFAULT_CERTS_DIR, Lab, LabStartError
from propylon.lab import process as lab_process

CERTS = os.environ.get("PROPYLON_LAB_CERTS", str(DEFAULT_CERTS_DIR))
MEMBERS = ("blue", "green")
HERE = Path(__file__).resolve().parent
_OWN: list[Lab] = []  # the lab this directory started, if any


def _answers(port: int, text: bytes) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            return r.read() == text
    except OSError:
        return False


def _lab_in_this_process() -> Optional[Lab]:
    # Labs register themselves so they can be closed at exit; one on the fixed
    # ports with both members running is as good as our own.
    for candidate in lab_process.open_labs():
        members = [candidate.members.get(n) for n in MEMBERS]
        if candidate.port_mode == "fixed" and all(m is not None and m.running for m in members):
            return candidate
    return None


class PartlyForeignLab:
    """Blue and/or green served by a lab another process started: usable for
    requests, but not ours to stop or freeze."""

    def __init__(self, own: Lab, foreign: list[str]) -> None:
        self.own = own
        self.foreign = foreign


PORTS = {"blue": (18080, b"Response from BLUE"), "green": (18081, b"Response from GREEN")}


def _start_member(own: Lab, name: str, deadline: float) -> bool:
    """Have ``name`` running in ``own``; False when another process serves it."""
    while True:
        try:
            own.start(name)  # no-op when it already runs
            return True
        except LabStartError as exc:
            if "in use" not in str(exc):
                pytest.fail(f"the lab did not start: {exc}", pytrace=False)
            if _answers(*PORTS[name]):
                return False
            if time.monotonic() > deadline:
                pytest.fail(f"the lab's fixed ports are taken: {exc}", pytrace=False)
        time.sleep(0.5)


def _own_lab() -> Lab:
    if not _OWN:
        _OWN.append(Lab(only=MEMBERS, certs_dir=CERTS, ports="fixed"))
    return _OWN[0]


@pytest.fixture
def lab() -> object:
    """Blue and green answering on their fixed ports, checked before every test
    (a lab another process runs may have gone away since the last one)."""
    existing = _lab_in_this_process()
    if existing is not None:
        return existing
    own = _own_lab()
    deadline = time.monotonic() + 30
    foreign = [name for name in MEMBERS if not _start_member(own, name, deadline)]
    return PartlyForeignLab(own, foreign) if foreign else own


def _close_own() -> None:
    while _OWN:
        _OWN.pop().close()


@pytest.hookimpl(trylast=True)  # after the fixtures' teardown (lab_chaos restores first)
def pytest_runtest_teardown(item: pytest.Item, nextitem: Optional[pytest.Item]) -> None:
    """Close our own lab once the next test (if any) lives outside this directory."""
    if nextitem is None or HERE not in Path(str(nextitem.path)).resolve().parents:
        _close_own()


class ChaosLab:
    """The lab as a chaos test drives it: ``stop``, ``start``, ``freeze``, ``resume``.

    On a shared machine another test run may take a port we just released. While
    a member is stopped, a watcher notes any process accepting on its port
    (:attr:`intruders`): the test's scenario did not happen then, and its failure
    is reported as a skip. Starting a member again waits for its port to be free.
    """

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.intruders: list[str] = []
        self._watchers: dict[str, threading.Event] = {}

    def stop(self, name: str) -> None:
        """Stop member ``name`` (connects are refused)."""
        self.lab.stop(name)
        done = self._watchers[name] = threading.Event()
        threading.Thread(target=self._watch, args=(name, done), daemon=True).start()

    def freeze(self, name: str) -> None:
        """SIGSTOP member ``name`` (connects succeed, nothing answers)."""
        self.lab.freeze(name)

    def resume(self, name: str) -> None:
        """SIGCONT a frozen member."""
        self.lab.resume(name)

    def start(self, name: str) -> None:
        """Start member ``name`` again, once its port is free."""
        self._unwatch(name)
        self._retrying(lambda: self.lab.start(name))

    def restore(self) -> None:
        """Blue and green running and unfrozen."""
        for name in list(self._watchers):
            self._unwatch(name)
        self._retrying(lambda: self.lab.restore(MEMBERS))

    def _watch(self, name: str, done: threading.Event) -> None:
        port = PORTS[name][0]
        while not done.wait(0.05):
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", port)) == 0 and not done.is_set():
                    self.intruders.append(name)
                    return

    def _unwatch(self, name: str) -> None:
        done = self._watchers.pop(name, None)
        if done is not None:
            done.set()

    @staticmethod
    def _retrying(action, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                action()
                return
            except LabStartError as exc:
                if "in use" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)


@pytest.fixture
def lab_chaos(lab) -> Iterator[ChaosLab]:
    """The session lab for a test that stops or freezes blue or green; both are
    running and unfrozen before and after the test."""
    if not isinstance(lab, Lab):
        pytest.skip(f"{', '.join(lab.foreign)} served by a lab another process runs; "
                    "cannot stop or freeze it")
    chaos = ChaosLab(lab)
    chaos.restore()
    try:
        yield chaos
    finally:
        chaos.restore()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A chaos test that failed while another process served a member it had
    stopped is reported as skipped: what it checks could not be observed."""
    report = yield
    chaos = getattr(item, "funcargs", {}).get("lab_chaos")
    if call.when == "call" and report.failed and isinstance(chaos, ChaosLab) and chaos.intruders:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: another process took the port of stopped "
                           f"{', '.join(sorted(set(chaos.intruders)))} during the test")
    return report
