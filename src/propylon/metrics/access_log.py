"""The access log: one line per request, in JSON or nginx's ``combined`` format.

The event loop collects each finished request's record (a "row": the request's
raw values, see ``record.RequestRecord``); a writer thread does the file I/O, so a
slow disk never costs the requests' loop. Who makes the lines depends on their
cost: the compiled build's JSON line is made in C on the loop as the request ends
(``json_batch.JsonBatch``; cheaper than keeping the row alive until the thread
runs), other lines are made by the thread from the rows. A batch goes to the
thread when about ``buffer_bytes`` of lines are buffered (counted at :data:`LINE_ESTIMATE`
bytes a line) or ``flush_interval`` seconds after the first row. Should the disk
fall so far behind that ``max_pending_bytes`` wait for it, lines are dropped and
counted (a warning says how many) rather than held without bound.

SIGUSR1 reopens the file (what logrotate's ``postrotate`` sends): lines buffered
before the signal go to the old file, every later one to the new file. Each
worker process has its own writer, and writes whole lines with ``O_APPEND``, so
several workers can share one file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional

__all__ = ["AccessLogConfig", "AccessLogWriter", "FIELDS", "DEFAULT_FIELDS", "LINE_ESTIMATE"]

log = logging.getLogger("propylon.access_log")

#: The fields a JSON line may carry (``AccessLogConfig.fields`` picks among them).
FIELDS = ("time", "client_addr", "method", "path", "status", "bytes_sent", "bytes_received",
          "duration", "upstream_duration", "upstream_addr", "retries", "error", "request_id",
          "user_agent", "referer", "service")
DEFAULT_FIELDS = ("time", "client_addr", "method", "path", "status", "bytes_sent", "duration",
                  "upstream_duration", "upstream_addr", "retries", "error", "request_id", "user_agent")

#: Bytes a buffered line is counted as, before the writer thread has made it.
LINE_ESTIMATE = 256

_REOPEN = object()
_STOP = object()


@dataclass(frozen=True)
class AccessLogConfig:
    """Where and how to write the access log.

    * ``path``: a file (created if missing, appended to), or ``"-"`` for stdout.
    * ``format``: ``"json"`` (one object per line with ``fields``) or ``"combined"``
      (nginx's: address, time, request line, status, bytes, referer, user agent).
    * ``fields``: the JSON fields, from :data:`FIELDS`; durations are seconds.
    * ``flush_interval`` (0.5 s), ``buffer_bytes`` (64 KiB): when buffered lines go
      to the writer; ``max_pending_bytes`` (8 MiB): bytes waiting for the disk
      beyond which lines are dropped.
    """

    path: str = "-"
    format: Literal["json", "combined"] = "json"
    fields: tuple[str, ...] = DEFAULT_FIELDS
    flush_interval: float = 0.5
    buffer_bytes: int = 64 * 1024
    max_pending_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValueError("access_log: field 'path': must be a file path or '-' for stdout")
        if self.format not in ("json", "combined"):
            raise ValueError(f"access_log: field 'format': {self.format!r} is not 'json' or 'combined'")
        fields = tuple(self.fields)
        unknown = [f for f in fields if f not in FIELDS]
        if unknown or not fields:
            raise ValueError(f"access_log: field 'fields': unknown {unknown or 'empty list'}; "
                             f"choose from {', '.join(FIELDS)}")
        object.__setattr__(self, "fields", fields)
        for name in ("flush_interval", "buffer_bytes", "max_pending_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"access_log: field '{name}': must be a positive number, got {value!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "AccessLogConfig":
        """From a configuration mapping (``{path: ..., format: json, fields: [...]}``);
        an unknown key is an error naming it."""
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"access_log: unknown field {extra[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**data)


class AccessLogWriter:
    """Buffers rows on the event loop; a thread formats them with ``formatter``
    (a row and the offset of ``time.perf_counter()`` to wall-clock time -> one line
    without its newline) and writes them (see the module docstring).

    ``format_rows``, if given, formats a whole batch in the thread instead (rows
    and offset -> the UTF-8 of their lines, each ending in a newline). ``encoder``,
    if given, makes each row's line as it is written, on the loop: its
    ``add(row, offset)`` keeps the line's bytes, ``take()`` hands over those of the
    batch, and the thread only writes them (for a line cheaper to make than the
    row is to keep: no row outlives its request).

    Made once; starts its thread and signal handler in the process that writes the
    first row (a forked worker)."""

    def __init__(self, config: AccessLogConfig, formatter: Callable[[Any, float], str],
                 format_rows: Optional[Callable[[list, float], bytes]] = None, encoder: Any = None) -> None:
        self.config = config
        self.formatter = formatter
        self.format_rows = format_rows
        self.encoder = encoder
        #: rows that go to the thread together
        self.batch = max(1, config.buffer_bytes // LINE_ESTIMATE)
        self._max_pending = max(1, config.max_pending_bytes // LINE_ESTIMATE)
        #: the rows buffered on the loop (none with an encoder, which holds their lines)
        self.rows: list[Any] = []
        self.pending = 0  # rows written since the last flush
        self._offset = 0.0  # the batch's offset to wall-clock time (encoder)
        self._timer: Optional[asyncio.TimerHandle] = None
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._pid = 0
        self._queued_rows = 0  # updated by both sides; ints under the GIL
        self._written_rows = 0
        self._dropped = 0

    def write(self, row: Any) -> None:
        """Add one request's row."""
        if not self.pending:
            if self._thread is None:  # normally started by the proxy app in its worker
                self.start()  # (which forgets rows a parent process left behind)
            # One offset per batch: the two clocks do not drift apart within one.
            self._offset = time.time() - time.perf_counter()
            self._timer = asyncio.get_running_loop().call_later(self.config.flush_interval, self.flush)
        if self.encoder is not None:
            self.encoder.add(row, self._offset)
        else:
            self.rows.append(row)
        self.pending += 1
        if self.pending >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered rows to the writer thread."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        count = self.pending
        if not count:
            return
        if self._thread is None:
            self.start()
        self.pending = 0
        if self.encoder is not None:
            item: Any = self.encoder.take()
        else:
            item = self.rows
            self.rows = []
        if self._queued_rows - self._written_rows + count > self._max_pending:
            if not self._dropped:
                log.warning("access log %s is not keeping up; dropping lines", self.config.path)
            self._dropped += count
            return
        self._queued_rows += count
        self._queue.put((count, item, self._offset))

    def reopen(self) -> None:
        """Send what is buffered to the current file, then reopen the path."""
        self.flush()
        self._queue.put(_REOPEN)

    def close(self, timeout: float = 5.0) -> None:
        """Write everything buffered and stop the thread (at shutdown)."""
        if self._thread is None or self._pid != os.getpid():
            return
        self.flush()
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        if self._dropped:
            log.warning("access log %s: %d lines were dropped", self.config.path, self._dropped)

    # --- in the writing process ---------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread and the SIGUSR1 handler in this process (a worker,
        with its loop running); does nothing if they already run here."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.rows = []
        if self.encoder is not None and self.pending:
            self.encoder.take()
        self.pending = 0
        self._timer = None
        self._queue = queue.SimpleQueue()
        self._queued_rows = self._written_rows = 0
        self._thread = threading.Thread(target=self._run, name="propylon-access-log", daemon=True)
        self._thread.start()
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.reopen)
        except (RuntimeError, ValueError, NotImplementedError):
            log.warning("access log: cannot handle SIGUSR1 here; the file will not be reopened")

    def _open(self) -> Optional[int]:
        path = self.config.path
        if path == "-":
            return sys.stdout.fileno()
        try:
            return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            log.error("cannot open access log %s: %s", path, e)
            return None

    def _run(self) -> None:
        fmt = self.formatter
        format_rows = self.format_rows
        fd = self._open()
        own = self.config.path != "-"
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if item is _REOPEN:
                if own:
                    if fd is not None:
                        os.close(fd)
                    fd = self._open()
                continue
            count, rows, offset = item
            if fd is not None:
                try:
                    if type(rows) is bytes:  # made by the encoder
                        data = rows
                    elif format_rows is not None:
                        data = format_rows(rows, offset)
                    else:
                        data = encode_lines([fmt(row, offset) for row in rows])
                except Exception:  # a bug here must not stop the log
                    log.exception("access log %s: cannot format lines", self.config.path)
                    data = b""
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                except OSError as e:
                    log.error("cannot write access log %s: %s", self.config.path, e)
            self._written_rows += count
        if own and fd is not None:
            os.close(fd)


# --- formatting --------------------------------------------------------------------------
# Quotes, backslashes and control bytes escaped as nginx does, so a request
# cannot forge a line or a field of its own.
_CLF_ESCAPES = {c: f"\\x{c:02X}" for c in (*range(0x20), 0x7F)}
_CLF_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})


def clf_quote(value: Optional[str]) -> str:
    """A field of a ``combined`` line: ``-`` when empty, else escaped."""
    if not value:
        return "-"
    return value.translate(_CLF_ESCAPES)


def encode_lines(lines: list) -> bytes:
    """Lines (``str``, without their newlines) as the bytes to write: UTF-8, each
    ending in a newline (``lines`` gets an empty last item for the final one)."""
    lines.append("")
    return "\n".join(lines).encode("utf-8", "replace")
