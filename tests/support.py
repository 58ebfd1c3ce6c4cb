"""Helpers every test folder shares (``import support``: ``tests/`` is on the path).

The folders' own modules (``*_support.py``) keep only what their lessons need.

* Ports: :func:`free_port`, :func:`wait_port`, :func:`wait_port_free`.
* Processes: :class:`Proc` (a Python process in its own session, its output in a
  file the test searches with :meth:`Proc.wait_log` / :meth:`Proc.wait_count`),
  :class:`Example` and :func:`running` for the lesson examples.
* curl: :func:`run_curl` and :func:`parse_head`; bodies: :func:`pattern`;
  :class:`RedisServer`, a throw-away redis-server (the ``redis_server`` fixture).
* Prometheus: :func:`scrape` (one scrape's samples) and :func:`total`.
* Event loops: :class:`LoopThread`, a uvloop loop in a thread the test drives.
* :class:`Echo`: a proxy that answers every request itself, echoing it.
* A lab another test run may share: :func:`retry_when`, and :class:`FixedLab` for
  the members the examples expect on their fixed ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Iterator, Optional

import pytest
import uvloop

from propylon import ProxyHttp
from propylon.lab import DEFAULT_CERTS_DIR, MEMBERS, Lab, LabStartError
from propylon.lab import process as lab_process

REPO = Path(__file__).resolve().parents[1]
#: Where the fixed-port lab keeps its certificates.
LAB_CERTS = os.environ.get("PROPYLON_LAB_CERTS", str(DEFAULT_CERTS_DIR))
#: How often the waiting helpers look again.
POLL = 0.05


# --- Prometheus ----------------------------------------------------------------------------
class Echo(ProxyHttp):
    """Answers every request itself: ``<method> <path> <body>``."""

    async def request_filter(self, session, ctx) -> bool:
        body = bytearray()
        while (chunk := await session.read_request_body()) is not None:
            body += chunk
        req = session.req_header
        await session.write_response(200, req.method_bytes + b" " + req.raw_path + b" " + bytes(body))
        return True

    async def upstream_peer(self, session, ctx):
        raise AssertionError("never proxied")


def scrape(port: int, path: str = "/metrics") -> dict[tuple, float]:
    """Every sample of one scrape on ``127.0.0.1:port``, parsed by prometheus_client's
    own parser: ``{(name, sorted label items): value}``."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict[tuple, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, items), v in samples.items() if n == name and want <= set(items))


# --- ports ---------------------------------------------------------------------------------
def free_port() -> int:
    """A loopback port nothing listens on right now (bound to 0 and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1",
              proc: Optional["Proc"] = None) -> None:
    """Wait until ``host:port`` accepts TCP connections (failing early if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.describe_log()}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                detail = f":\n{proc.describe_log()}" if proc is not None else ""
                raise AssertionError(f"nothing listening on {host}:{port} after {timeout}s{detail}") from None
            time.sleep(POLL)


def wait_port_free(port: int, timeout: float = 15.0) -> None:
    """Wait until nothing accepts on 127.0.0.1:``port`` (an earlier test's process may linger)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"127.0.0.1:{port} is taken by another program")
        time.sleep(0.1)


# --- processes -------------------------------------------------------------------------------
class Proc:
    """``python <args>`` from the repository root in a session of its own, with
    ``PROPYLON_LOG=info``; stdout and stderr go to ``log_path`` (a temporary file,
    removed by :meth:`stop`, when none is given)."""

    def __init__(self, args: Iterable[str], log_path: Optional[Path] = None,
                 env: Optional[dict] = None) -> None:
        args = [str(a) for a in args]
        self.name = args[0] if args else sys.executable
        self._temporary = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="propylon-test-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self._out = open(log_path, "ab")
        full_env = dict(os.environ, PROPYLON_LOG="info", PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        self.popen = subprocess.Popen([sys.executable, *args], cwd=REPO, env=full_env,
                                      stdout=self._out, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    # the log
    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        """Current length of the log, to search only what comes after a point."""
        return len(self.log())

    def describe_log(self) -> str:
        """The log as failure messages show it."""
        return self.log()

    def count(self, pattern: str) -> int:
        """How many times ``pattern`` occurs in the log."""
        return len(re.findall(pattern, self.log()))

    def wait_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match:
        """Wait until the log (from character ``start``) matches ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log(), start)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in the log of {self.name} "
                                     f"within {timeout}s:\n{self.describe_log()}")
            time.sleep(POLL)

    def wait_count(self, pattern: str, count: int = 1, timeout: float = 10.0) -> list:
        """Wait until ``pattern`` matches the log ``count`` times; return every match
        (as ``re.findall`` gives them)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = rx.findall(self.log())
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not {count} times in the log of {self.name} "
                                     f"within {timeout}s:\n{self.describe_log()}")
            time.sleep(POLL)

    # the process
    def port(self, service: str = "pid", timeout: float = 10.0) -> int:
        """The port ``service`` logged it listens on."""
        m = self.wait_log(rf": listening on \w+://127\.0\.0\.1:(\d+) \({re.escape(service)}\)", timeout)
        return int(m.group(1))

    def wait_port(self, port: int, timeout: float = 15.0) -> None:
        """Wait until the process accepts TCP connections on 127.0.0.1:``port``."""
        wait_port(port, timeout, proc=self)

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 10.0) -> int:
        return self.popen.wait(timeout)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers past ``grace`` seconds."""
        self._end((signal.SIGTERM, signal.SIGKILL), grace)

    def kill(self) -> None:
        """SIGKILL the process and everything it forked (its session's group)."""
        self._end((signal.SIGKILL,), 5.0)

    def _end(self, signals: tuple, grace: float) -> None:
        for sig in signals:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        self._out.close()
        if self._temporary:
            self.log_path.unlink(missing_ok=True)


class Example(Proc):
    """One lesson example: ``python <script> <args>``."""

    def __init__(self, script: str, args: Iterable[str] = (), env: Optional[dict] = None) -> None:
        super().__init__([script, *args], env=env)
        self.script = script


@contextlib.contextmanager
def running(script: str, *ports: int, args: Iterable[str] = (), env: Optional[dict] = None,
            cls: type = Example) -> Iterator[Any]:
    """Run ``script`` (as ``cls``) until the block ends; ready once every port in
    ``ports`` accepts. The process group is stopped whatever happened inside."""
    for port in ports:
        wait_port_free(port)
    ex = cls(script, args=args, env=env)
    try:
        for port in ports:
            ex.wait_port(port)
        yield ex
    finally:
        ex.stop()


# --- curl ------------------------------------------------------------------------------------
def run_curl(*args: str, timeout: float = 20.0, text: bool = False) -> subprocess.CompletedProcess:
    """``curl -sS --max-time <timeout> <args>``: quiet but for errors, and never through
    a proxy from the environment (``-x`` still works); curl's own failures are left
    to the caller."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    out = subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args],
                         capture_output=True, timeout=timeout + 5, env=env)
    if text:
        return subprocess.CompletedProcess(out.args, out.returncode,
                                           out.stdout.decode("utf-8", "replace"),
                                           out.stderr.decode("utf-8", "replace"))
    return out


def curl_json(url: str, *headers: str) -> tuple[int, Any]:
    """GET ``url`` with curl (``headers`` as ``"Name: value"``): the status and the
    JSON body."""
    args = ["-s", "-w", "\n%{http_code}", url]
    for h in headers:
        args += ["-H", h]
    body, _, code = run_curl(*args, text=True).stdout.rpartition("\n")
    return int(code), json.loads(body)


def parse_head(head: str) -> tuple[int, list[tuple[str, str]]]:
    """A response head as ``curl -i`` prints it: the status and the fields
    (lower-case names, in order)."""
    lines = head.split("\r\n")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.append((name.strip().lower(), value.strip()))
    return int(lines[0].split()[1]), fields


# --- redis -----------------------------------------------------------------------------------
class RedisServer:
    """A throw-away redis-server process that the test can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


# --- bodies ----------------------------------------------------------------------------------
PATTERN = bytes(range(256)) * 256  # 64 KiB


def pattern(n: int) -> bytes:
    """``n`` bytes of the repeating 0..255 pattern (what the lab's ``/size`` sends)."""
    reps = n // len(PATTERN) + 1
    return (PATTERN * reps)[:n]


# --- event loops -------------------------------------------------------------------------------
class LoopThread:
    """A uvloop event loop running in a thread; tests hand it coroutines and calls."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable, timeout: float = 30) -> Any:
        """Run ``coro`` on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any], timeout: float = 10) -> Any:
        """Call ``fn`` on the loop's thread and return its result."""
        async def call() -> Any:
            return fn()
        return self.run(call(), timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --- a lab shared with other test runs ------------------------------------------------------------
def retry_when(gone: type[BaseException], recover: Callable[[], Optional[Callable[[], Any]]],
               attempts: int = 3) -> Callable[[Callable], Callable]:
    """A decorator: run the test again (``attempts`` times in all) when it ends with
    ``gone``, after calling what ``recover()`` returns (when it returns something).

    For tests of examples that talk to the fixed-port lab, which another test run
    on the machine may stop at any moment.
    """
    def decorate(test: Callable) -> Callable:
        @functools.wraps(test)
        def run(*args, **kwargs):
            for attempt in range(attempts):
                try:
                    return test(*args, **kwargs)
                except gone:
                    if attempt == attempts - 1:
                        raise
                    bring_back = recover()
                    if bring_back is not None:
                        bring_back()
        return run
    return decorate


def served(name: str) -> bool:
    """Whether something listens on lab member ``name``'s fixed address.

    A refused connect means nobody; a timeout means a listener that does not
    accept (the blackhole does exactly that).
    """
    for ep in MEMBERS[name].endpoints:
        family = socket.AF_UNIX if ep.path is not None else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.3)
            try:
                s.connect(ep.path if ep.path is not None else (ep.host, ep.port))
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return False
    return True


def base_lab(request: pytest.FixtureRequest) -> Optional[Lab]:
    """A fixed-port lab of this process (the suite's ``lab`` when it runs on the fixed
    ports), or None: another process holds the ports, or the suite's lab runs on
    ephemeral ones (``PROPYLON_LAB_PORTS=ephemeral``), which the examples cannot use."""
    for candidate in lab_process.open_labs():
        if candidate.port_mode == "fixed":
            return candidate
    try:
        lab = request.getfixturevalue("lab")
    except pytest.fail.Exception:
        return None
    return lab if lab.port_mode == "fixed" else None


class FixedLab:
    """Lab members on their fixed ports (the examples hard-code them, as the seed
    hard-codes its Docker lab), for one test directory's session.

    :meth:`ensure` makes each named member answer: restored in the lab this process
    runs when it has it, else started in a spare lab of our own unless somebody
    (another test run on the machine) already serves its address.
    """

    def __init__(self, request: pytest.FixtureRequest, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self.base = base_lab(request)
        self.spare = Lab(only=self.names, certs_dir=LAB_CERTS, ports="fixed")

    def ensure(self) -> Lab:
        """Every named member answering; the lab in charge."""
        base, spare = self.base, self.spare
        for name in self.names:
            if base is not None and name in base.names:
                base.restore([name])
                continue
            member = spare.members.get(name)
            if (member is not None and member.running) or served(name):
                continue
            try:
                spare.start(name)
            except LabStartError as exc:
                if "in use" not in str(exc):  # lost a race with another run: theirs serves it
                    pytest.fail(f"lab member {name} did not start: {exc}", pytrace=False)
        return base if base is not None else spare

    def close(self) -> None:
        self.spare.close()

    def __enter__(self) -> "FixedLab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
