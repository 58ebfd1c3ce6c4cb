"""Run Propylon City as child processes, one per member, and control them.

:class:`Lab` starts the members (all, or a subset), waits until each one has bound
its ports and accepts connections, and then lets a test stop, start, freeze
(SIGSTOP) and resume (SIGCONT) any member, the way the seed's lessons stopped and
paused Docker containers. Each member is its own process, so freezing blue leaves
green answering.

Ports are either the fixed ones of the endpoint map (``ports="fixed"``, default) or
free ephemeral ones (``ports="ephemeral"``), for running several labs side by side;
read the real addresses from :meth:`Lab.endpoint`/:meth:`Lab.url` in either case.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Iterable, Literal, Optional, Sequence

from ._base import Endpoint
from .certs import DEFAULT_CERTS_DIR, LabCerts, ensure_certs
from .registry import DEFAULT_UDS_PATH, MEMBERS

__all__ = ["Lab", "LabProcess", "LabStartError", "open_labs"]

log = logging.getLogger(__name__)

PortMode = Literal["fixed", "ephemeral"]


class LabStartError(RuntimeError):
    """A lab member did not come up; the message names the member and its address."""


class LabProcess:
    """One member's process: its endpoints and its state (running, frozen, stopped)."""

    def __init__(self, name: str, certs: LabCerts, ports: Optional[Sequence[int]],
                 uds_path: Optional[str], log_path: Path, workers: int = 1) -> None:
        self.name = name
        self.workers = workers
        self.certs = certs
        self.ports = list(ports) if ports is not None else None
        self.uds_path = uds_path
        self.log_path = log_path
        self.proc: Optional[subprocess.Popen[bytes]] = None
        # until the child reports, show the addresses asked for (port 0 = any free port)
        defaults = list(MEMBERS[name].endpoints)
        tcp = iter(self.ports or [])
        self.endpoints: list[Endpoint] = [
            e if e.path is not None or self.ports is None
            else dataclasses.replace(e, port=next(tcp, e.port))
            for e in defaults]
        if uds_path is not None:
            self.endpoints = [dataclasses.replace(e, path=uds_path) if e.path else e
                              for e in self.endpoints]
        self.frozen = False

    @property
    def pid(self) -> Optional[int]:
        """The process id while running, else None."""
        return self.proc.pid if self.running else None

    @property
    def running(self) -> bool:
        """Whether the process is alive (frozen counts as alive)."""
        return self.proc is not None and self.proc.poll() is None

    def describe(self) -> str:
        """``name (addresses)`` for messages."""
        return f"{self.name} ({', '.join(_addr(e) for e in self.endpoints)})"

    def spawn(self) -> None:
        """Start the process; the lab then waits for its ``READY`` line."""
        cmd = [sys.executable, "-m", "propylon.lab._runner", self.name,
               "--certs", str(self.certs.dir)]
        if self.ports is not None:
            cmd += ["--ports", ",".join(str(p) for p in self.ports)]
        if self.uds_path is not None:
            cmd += ["--uds", self.uds_path]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        try:
            # own session: a Ctrl-C in the terminal reaches the lab, which stops members in order
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=logf, start_new_session=True)
        finally:
            logf.close()
        self.frozen = False

    def on_ready_line(self, line: str) -> None:
        """Take the endpoints reported by the child's ``READY`` line."""
        self.endpoints = [Endpoint.from_dict(d) for d in json.loads(line[len("READY "):])]
        if self.ports is None or any(p == 0 for p in self.ports):
            # keep the ports we got, so a restart comes back on the same addresses
            self.ports = [e.port for e in self.endpoints if e.path is None] or None

    def log_tail(self, lines: int = 8) -> str:
        """The last lines the member wrote to its log (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the member's process group (all its workers) if it is running."""
        if self.running:
            assert self.proc is not None
            try:
                os.killpg(self.proc.pid, sig)  # the child leads its own session and group
            except ProcessLookupError:
                pass

    def ask_to_stop(self) -> None:
        """Send SIGTERM (and SIGCONT if frozen, so the signal is acted on) without waiting."""
        self.signal(signal.SIGTERM)
        if self.frozen:
            self.signal(signal.SIGCONT)

    def terminate(self, timeout: float = 5.0) -> None:
        """Stop the process: SIGTERM (and SIGCONT if frozen), then SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.ask_to_stop()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        self.proc = None
        self.frozen = False


class Lab:
    """Propylon City as child processes.

    ``only`` limits the members (default: all of :data:`MEMBERS`); ``certs_dir``
    is where the lab PKI lives (default ``/tmp/propylon-lab/certs``); ``ports`` is
    ``"fixed"`` (the endpoint map's ports) or ``"ephemeral"``; ``port_overrides`` sets
    chosen members' ports explicitly (``{"blue": [28080]}``); ``workers`` runs HTTP
    members as several processes sharing one socket (``{"blue": 4}``, for
    benchmarks; freeze/stop act on all of them); ``startup_timeout`` is
    how long a member may take to come up. Use as a context manager::

        with Lab(only=["blue", "green"]) as lab:
            lab.url("blue")          # "http://127.0.0.1:18080"
            lab.freeze("blue")       # connects succeed, nothing answers
            lab.resume("blue")
    """

    def __init__(self, only: Optional[Iterable[str]] = None,
                 certs_dir: Optional[str | os.PathLike[str]] = None,
                 ports: PortMode = "fixed", uds_path: Optional[str] = None,
                 startup_timeout: float = 15.0,
                 port_overrides: Optional[dict[str, Sequence[int]]] = None,
                 workers: Optional[dict[str, int]] = None) -> None:
        names = list(only) if only is not None else list(MEMBERS)
        unknown = [n for n in names if n not in MEMBERS]
        if unknown:
            raise ValueError(f"unknown lab member(s) {unknown}; known: {', '.join(MEMBERS)}")
        if ports not in ("fixed", "ephemeral"):
            raise ValueError(f"ports must be 'fixed' or 'ephemeral', not {ports!r}")
        self.names = names
        self.port_mode: PortMode = ports
        self.startup_timeout = startup_timeout
        self.certs = LabCerts(Path(certs_dir) if certs_dir is not None else DEFAULT_CERTS_DIR)
        self._certs_ready = False
        self._runtime = Path(tempfile.mkdtemp(prefix="propylon-lab-"))
        if uds_path is None:
            uds_path = DEFAULT_UDS_PATH if ports == "fixed" else str(self._runtime / "upstream.sock")
        self.uds_path = uds_path
        self.members: dict[str, LabProcess] = {}
        self._overrides = {k: list(v) for k, v in (port_overrides or {}).items()}
        self._workers = dict(workers or {})
        # members notice a dead parent through stdin, but a frozen one cannot: close at exit
        _OPEN_LABS.add(self)

    # -- life cycle ---------------------------------------------------------------
    def __enter__(self) -> "Lab":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, name: Optional[str] = None) -> "Lab":
        """Start member ``name``, or every member not yet running when ``name`` is None.

        Returns once the started members accept connections; raises
        :class:`LabStartError` naming the member that failed (the others are stopped
        again if this was the first start).
        """
        if not self._certs_ready:
            self.certs = ensure_certs(self.certs.dir)
            self._certs_ready = True
        names = [name] if name is not None else self.names
        todo = []
        for n in names:
            mp = self._member(n, create=True)
            if not mp.running:
                mp.spawn()
                todo.append(mp)
        try:
            self._wait_ready(todo)
        except LabStartError:
            if name is None:
                self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every member and remove the lab's scratch directory."""
        for mp in self.members.values():
            mp.ask_to_stop()  # all at once: members close in parallel
        for mp in self.members.values():
            mp.terminate()
        shutil.rmtree(self._runtime, ignore_errors=True)
        _OPEN_LABS.discard(self)

    def stop(self, name: str) -> None:
        """Stop member ``name`` (its ports close; connects are refused)."""
        self._member(name).terminate()

    def freeze(self, name: str) -> None:
        """Pause member ``name`` with SIGSTOP: its ports still accept, nothing answers."""
        mp = self._member(name)
        if not mp.running:
            raise RuntimeError(f"lab member {name!r} is not running")
        mp.signal(signal.SIGSTOP)
        mp.frozen = True

    def resume(self, name: str) -> None:
        """Let a frozen member run again (SIGCONT)."""
        mp = self._member(name)
        mp.signal(signal.SIGCONT)
        mp.frozen = False

    def restore(self, names: Optional[Iterable[str]] = None) -> None:
        """Make sure the given members (default: all) are running and not frozen."""
        for n in list(names) if names is not None else self.names:
            mp = self._member(n, create=True)
            if mp.running and mp.frozen:
                self.resume(n)
            elif not mp.running:
                self.start(n)

    # -- addresses ----------------------------------------------------------------
    @property
    def certs_dir(self) -> Path:
        """Directory of the lab certificates (``ca.crt``, ``server.crt``, ``client.crt`` ...)."""
        return self.certs.dir

    def endpoint(self, name: str, scheme: Optional[str] = None) -> Endpoint:
        """The endpoint of member ``name`` (the one speaking ``scheme``, if given)."""
        eps = self._member(name).endpoints
        for e in eps:
            if scheme is None or e.scheme == scheme:
                return e
        raise KeyError(f"lab member {name!r} has no {scheme!r} endpoint")

    def address(self, name: str, scheme: Optional[str] = None) -> tuple[str, int] | str:
        """``(host, port)`` of member ``name`` (the socket path for ``uds``)."""
        return self.endpoint(name, scheme).address

    def url(self, name: str, scheme: Optional[str] = None) -> str:
        """Base URL of member ``name``, e.g. ``http://127.0.0.1:18080``."""
        return self.endpoint(name, scheme).url

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint of every member, in endpoint-map order."""
        return [e for n in self.names for e in self._member(n, create=True).endpoints]

    def is_running(self, name: str) -> bool:
        """Whether member ``name`` is running (frozen or not)."""
        return self._member(name).running

    def is_frozen(self, name: str) -> bool:
        """Whether member ``name`` is frozen."""
        return self._member(name).frozen

    # -- internals ----------------------------------------------------------------
    def _member(self, name: str, create: bool = False) -> LabProcess:
        mp = self.members.get(name)
        if mp is None:
            if not create or name not in MEMBERS:
                raise KeyError(f"lab member {name!r} is not part of this lab ({', '.join(self.names)})")
            ports: Optional[list[int]] = None
            if name in self._overrides:
                ports = self._overrides[name]
            elif self.port_mode == "ephemeral":
                ports = [0 for e in MEMBERS[name].endpoints if e.path is None] or None
            mp = LabProcess(name, self.certs, ports,
                            self.uds_path if name == "uds" else None,
                            self._runtime / f"{name}.log", self._workers.get(name, 1))
            self.members[name] = mp
        return mp

    def _wait_ready(self, todo: list[LabProcess]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        pending = {mp.proc.stdout.fileno(): mp for mp in todo if mp.proc and mp.proc.stdout}
        buffers: dict[int, bytes] = {fd: b"" for fd in pending}
        sel = selectors.DefaultSelector()
        for fd in pending:
            sel.register(fd, selectors.EVENT_READ)
        try:
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    mp = next(iter(pending.values()))
                    tail = mp.log_tail()
                    for late in pending.values():
                        late.terminate()
                    raise LabStartError(f"lab member {mp.describe()} did not report ready within "
                                        f"{self.startup_timeout:.0f}s\n{tail}")
                for key, _ in sel.select(min(left, 0.5)):
                    fd = key.fd
                    mp = pending[fd]
                    chunk = os.read(fd, 65536)
                    buffers[fd] += chunk
                    if b"\n" in buffers[fd] or not chunk:
                        line = buffers[fd].split(b"\n", 1)[0].decode(errors="replace")
                        sel.unregister(fd)
                        del pending[fd]
                        self._check_ready(mp, line)
        finally:
            sel.close()
        for mp in todo:
            self._check_accepts(mp, deadline)

    def _check_ready(self, mp: LabProcess, line: str) -> None:
        if line.startswith("READY "):
            mp.on_ready_line(line)
            return
        reason = line[len("FAILED "):] if line.startswith("FAILED ") else "exited before it was ready"
        mp.terminate()
        hint = ""
        if "in use" in reason.lower() and self.port_mode == "fixed":
            hint = ("\n(another lab or program holds the port; stop it, or run with "
                    "PROPYLON_LAB_PORTS=ephemeral)")
        raise LabStartError(f"lab member {mp.describe()} did not start: {reason}{hint}\n"
                            f"{mp.log_tail()}".rstrip())

    def _check_accepts(self, mp: LabProcess, deadline: float) -> None:
        """Confirm each TCP/Unix endpoint takes a connection (the blackhole must not)."""
        for ep in mp.endpoints:
            if mp.name == "blackhole":
                continue
            while True:
                try:
                    if ep.path is not None:
                        with socket.socket(socket.AF_UNIX) as s:
                            s.settimeout(1.0)
                            s.connect(ep.path)
                    else:
                        socket.create_connection((ep.host, ep.port), timeout=1.0).close()
                    break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        raise LabStartError(f"lab member {mp.name}: {_addr(ep)} does not accept "
                                            f"connections: {exc}") from exc
                    time.sleep(0.05)


_OPEN_LABS: "weakref.WeakSet[Lab]" = weakref.WeakSet()


def open_labs() -> list["Lab"]:
    """The labs this process has started and not closed, the one with the most
    members first: test fixtures use it to share one lab on the fixed ports."""
    started = [lab for lab in list(_OPEN_LABS) if lab.members]
    return sorted(started, key=lambda lab: len(lab.names), reverse=True)


@atexit.register
def _close_open_labs() -> None:
    for lab in list(_OPEN_LABS):
        lab.close()


def _addr(ep: Endpoint) -> str:
    return ep.path if ep.path is not None else f"{ep.host}:{ep.port}"
