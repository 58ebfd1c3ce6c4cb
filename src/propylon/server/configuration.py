"""The server's own settings (``ServerConf``), read from YAML once at start.

The fields and defaults follow Pingora's ``ServerConf``. Two differences:

* An unknown key is an error (Pingora silently ignores it): a typo such as
  ``threds: 4`` should not quietly run with one worker.
* Every error is a :class:`ConfigError` whose message is one line naming the file,
  the field and the problem, so the server can print it and exit without a traceback.

Some fields only make sense for Pingora's Rust runtime (``listener_tasks_per_fd``,
the connect offload thread pools, tokio's blocking thread settings). They are
accepted so that Pingora configuration files load unchanged, and a warning is
logged when they are set to something other than their default.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import pwd
import grp
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

__all__ = ["ServerConf", "ConfigError"]

log = logging.getLogger(__name__)

# Longest path an AF_UNIX address can hold on Linux (sun_path is 108 bytes with the NUL).
_MAX_UDS_PATH = 107

# Used by ``grace_period`` / ``graceful_shutdown_timeout`` when the field is unset.
DEFAULT_GRACE_PERIOD_SECONDS = 300
DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS = 5
DEFAULT_UPGRADE_RETRIES = 5


class ConfigError(ValueError):
    """A configuration problem, reported as one line: ``<file>: field '<name>': <problem>``.

    ``path`` is the file (or ``None`` for configuration built in code), ``field`` the
    offending key (``None`` when the problem is the file as a whole).
    """

    def __init__(self, problem: str, *, path: Optional[str] = None, field: Optional[str] = None):
        self.path = path
        self.field = field
        self.problem = problem
        where = path if path is not None else "configuration"
        msg = f"{where}: field '{field}': {problem}" if field is not None else f"{where}: {problem}"
        super().__init__(msg)


# Field kinds used to check the YAML values: each is (python types, description).
_BOOL = ((bool,), "true or false")
_INT = ((int,), "an integer")
_STR = ((str,), "a string")
_STR_LIST = ((list,), "a list of strings")


def _spec(kind, *, optional: bool = False, ignored: bool = False):
    return {"kind": kind, "optional": optional, "ignored": ignored}


@dataclass
class ServerConf:
    """Settings of the server process. Every field has Pingora's default.

    Process: ``daemon`` (False), ``error_log`` (None: stderr; used as the log file
    when daemonized), ``pid_file`` (``/tmp/propylon.pid``, written in daemon mode; an
    existing one is renamed ``.old``), ``upgrade_sock``
    (``/tmp/propylon_upgrade.sock``, where a new process waits for the listening
    sockets during a graceful upgrade), ``user``/``group`` (None; switched to after
    daemonizing when running as root).

    Workers: ``threads`` (1) is the number of worker *processes* (Python has a GIL);
    ``work_stealing`` (True) shares one listening socket between them, False gives
    each its own ``SO_REUSEPORT`` socket so the kernel spreads connections.

    Shutdown: ``grace_period_seconds`` (None = 300) is how long SIGTERM waits for
    connections and background work to finish; ``graceful_shutdown_timeout_seconds``
    (None = 5) is the extra time given before remaining tasks are cancelled.

    Upstream side (read by the proxy): ``ca_file``, ``client_bind_to_ipv4``/``ipv6``
    ([]), ``upstream_keepalive_pool_size`` (128), ``upstream_debug_ssl_keylog``
    (False), ``max_retries`` (16).

    Accepted and ignored (Rust runtime details): ``listener_tasks_per_fd`` (1),
    ``upstream_connect_offload_threadpools`` / ``_thread_per_pool`` (None),
    ``max_blocking_threads``, ``blocking_threads_ttl_seconds`` (None),
    ``daemon_wait_for_ready`` (False: the starting command always waits until the
    daemon has bound its listeners). ``upgrade_sock_connect_accept_max_retries``
    (None = 5) is honoured: the number of one-second attempts on each side of the
    socket handover.
    """

    version: int = 1
    daemon: bool = False
    error_log: Optional[str] = None
    pid_file: str = "/tmp/propylon.pid"
    upgrade_sock: str = "/tmp/propylon_upgrade.sock"
    user: Optional[str] = None
    group: Optional[str] = None
    threads: int = 1
    listener_tasks_per_fd: int = 1
    work_stealing: bool = True
    ca_file: Optional[str] = None
    grace_period_seconds: Optional[int] = None
    graceful_shutdown_timeout_seconds: Optional[int] = None
    client_bind_to_ipv4: list[str] = field(default_factory=list)
    client_bind_to_ipv6: list[str] = field(default_factory=list)
    upstream_keepalive_pool_size: int = 128
    upstream_connect_offload_threadpools: Optional[int] = None
    upstream_connect_offload_thread_per_pool: Optional[int] = None
    upstream_debug_ssl_keylog: bool = False
    max_retries: int = 16
    upgrade_sock_connect_accept_max_retries: Optional[int] = None
    max_blocking_threads: Optional[int] = None
    blocking_threads_ttl_seconds: Optional[int] = None
    daemon_wait_for_ready: bool = False

    # The file this configuration came from, for error messages (not a YAML key).
    source: Optional[str] = field(default=None, repr=False, compare=False)

    # --- effective values ------------------------------------------------------
    @property
    def grace_period(self) -> int:
        """Seconds SIGTERM waits for work to finish (``grace_period_seconds`` or 300)."""
        v = self.grace_period_seconds
        return DEFAULT_GRACE_PERIOD_SECONDS if v is None else v

    @property
    def graceful_shutdown_timeout(self) -> int:
        """Extra seconds before remaining tasks are cancelled (default 5)."""
        v = self.graceful_shutdown_timeout_seconds
        return DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS if v is None else v

    @property
    def upgrade_retries(self) -> int:
        """One-second attempts to connect/accept on ``upgrade_sock`` (default 5)."""
        v = self.upgrade_sock_connect_accept_max_retries
        return DEFAULT_UPGRADE_RETRIES if v is None else v

    # --- loading -----------------------------------------------------------------
    @classmethod
    def load(cls, path: str) -> "ServerConf":
        """Read, parse and validate a YAML file. Raises :class:`ConfigError`."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"cannot read configuration file: {e.strerror or e}", path=path) from None
        return cls.from_yaml(text, path=path)

    @classmethod
    def from_yaml(cls, text: str, *, path: Optional[str] = None) -> "ServerConf":
        """Parse and validate YAML text (an empty document gives the defaults)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"invalid YAML{where}: {problem}", path=path) from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"expected a mapping of settings at the top level, got {_type_name(data)}", path=path
            )
        return cls.from_dict(data, path=path)

    @classmethod
    def from_dict(cls, data: dict, *, path: Optional[str] = None) -> "ServerConf":
        """Build from a mapping, checking every key and value type, then validate."""
        values: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str) or key not in _FIELDS:
                hint = difflib.get_close_matches(str(key), _FIELDS, n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise ConfigError(f"unknown key{suggestion}", path=path, field=str(key))
            values[key] = _check_type(key, value, path)
        conf = cls(**values, source=path)
        conf.validate()
        conf._warn_ignored(values)
        return conf

    # --- checks ------------------------------------------------------------------
    def validate(self) -> None:
        """Check values that have the right type but make no sense. Raises ConfigError."""
        p = self.source
        for name in _FIELDS:
            _check_type(name, getattr(self, name), p)
        if self.version not in (0, 1):
            raise ConfigError(f"unsupported version {self.version} (expected 1)", path=p, field="version")
        if self.threads < 1:
            raise ConfigError(f"must be at least 1, got {self.threads}", path=p, field="threads")
        for name in ("listener_tasks_per_fd",):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be at least 1, got {getattr(self, name)}", path=p, field=name)
        for name in (
            "grace_period_seconds",
            "graceful_shutdown_timeout_seconds",
            "upstream_keepalive_pool_size",
            "max_retries",
            "upgrade_sock_connect_accept_max_retries",
        ):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ConfigError(f"must not be negative, got {v}", path=p, field=name)
        if not self.pid_file:
            raise ConfigError("must not be empty", path=p, field="pid_file")
        if not self.upgrade_sock:
            raise ConfigError("must not be empty", path=p, field="upgrade_sock")
        if len(os.fsencode(self.upgrade_sock)) > _MAX_UDS_PATH:
            raise ConfigError(
                f"path longer than {_MAX_UDS_PATH} bytes cannot be a Unix socket", path=p, field="upgrade_sock"
            )
        if self.user is not None:
            try:
                pwd.getpwnam(self.user)
            except (KeyError, ValueError):  # ValueError: a NUL byte in the name
                raise ConfigError(f"no such user '{self.user}'", path=p, field="user") from None
        if self.group is not None:
            try:
                grp.getgrnam(self.group)
            except (KeyError, ValueError):  # ValueError: a NUL byte in the name
                raise ConfigError(f"no such group '{self.group}'", path=p, field="group") from None

    def _warn_ignored(self, values: dict) -> None:
        for name, value in values.items():
            if _FIELDS[name]["ignored"] and value != _DEFAULTS[name]:
                log.warning("%s: '%s' has no effect in Propylon and is ignored", self.source or "configuration", name)

    # --- presentation ------------------------------------------------------------
    def to_dict(self) -> dict:
        """The YAML-visible fields and their values, in declaration order."""
        return {name: getattr(self, name) for name in _FIELDS}

    def dump(self) -> str:
        """A readable listing, one ``name: value`` line per field (``None`` shown as ~)."""
        lines = []
        for name, value in self.to_dict().items():
            if value is None:
                shown = "~"
            elif isinstance(value, bool):
                shown = "true" if value else "false"
            else:
                shown = str(value)
            lines.append(f"{name}: {shown}")
        return "\n".join(lines)


_FIELDS: dict[str, dict] = {
    "version": _spec(_INT),
    "daemon": _spec(_BOOL),
    "error_log": _spec(_STR, optional=True),
    "pid_file": _spec(_STR),
    "upgrade_sock": _spec(_STR),
    "user": _spec(_STR, optional=True),
    "group": _spec(_STR, optional=True),
    "threads": _spec(_INT),
    "listener_tasks_per_fd": _spec(_INT, ignored=True),
    "work_stealing": _spec(_BOOL),
    "ca_file": _spec(_STR, optional=True),
    "grace_period_seconds": _spec(_INT, optional=True),
    "graceful_shutdown_timeout_seconds": _spec(_INT, optional=True),
    "client_bind_to_ipv4": _spec(_STR_LIST),
    "client_bind_to_ipv6": _spec(_STR_LIST),
    "upstream_keepalive_pool_size": _spec(_INT),
    "upstream_connect_offload_threadpools": _spec(_INT, optional=True, ignored=True),
    "upstream_connect_offload_thread_per_pool": _spec(_INT, optional=True, ignored=True),
    "upstream_debug_ssl_keylog": _spec(_BOOL),
    "max_retries": _spec(_INT),
    "upgrade_sock_connect_accept_max_retries": _spec(_INT, optional=True),
    "max_blocking_threads": _spec(_INT, optional=True, ignored=True),
    "blocking_threads_ttl_seconds": _spec(_INT, optional=True, ignored=True),
    "daemon_wait_for_ready": _spec(_BOOL, ignored=True),
}
_DEFAULTS = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
             for f in dataclasses.fields(ServerConf) if f.name in _FIELDS}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _check_type(name: str, value: Any, path: Optional[str]) -> Any:
    spec = _FIELDS[name]
    types, desc = spec["kind"]
    if value is None:
        if spec["optional"]:
            return None
        raise ConfigError(f"expected {desc}, got null", path=path, field=name)
    # bool is a subclass of int: `threads: true` must not pass as 1.
    ok = isinstance(value, types) and not (types == (int,) and isinstance(value, bool))
    if ok and types == (list,):
        ok = all(isinstance(v, str) for v in value)
    if not ok:
        raise ConfigError(f"expected {desc}, got {_type_name(value)} ({value!r})", path=path, field=name)
    return value
