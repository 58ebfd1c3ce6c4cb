"""What the gateway keeps on disk beside its file: the last good copy, the history of
applied versions and the version each worker process runs.

The state directory is ``admin.state_dir`` or ``.propylon-state`` beside the gateway
file. Every worker of one server shares it, which is how they agree on version
numbers: a version is the number of the history entry whose content digest matches
the applied file, and the first process to apply new content appends that entry
(under an exclusive ``flock``), naming who asked for it.

Only the gateway file itself is versioned; files it includes are read as they are.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

__all__ = ["ConfigState", "HistoryEntry", "digest_of"]

log = logging.getLogger("propylon.gateway")

STATE_DIR_NAME = ".propylon-state"


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    digest: str
    who: str
    when: float
    text: str

    def summary(self) -> dict:
        return {"version": self.version, "digest": self.digest, "who": self.who, "when": self.when}


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, so a reader never sees half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".propylon-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        except FileNotFoundError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class ConfigState:
    """The state directory of one gateway file (see the module docstring)."""

    def __init__(self, config_path: str, state_dir: Optional[str] = None, keep: int = 20) -> None:
        self.config_path = os.path.abspath(config_path)
        base = os.path.basename(self.config_path)
        self.dir = os.path.abspath(state_dir or os.path.join(os.path.dirname(self.config_path), STATE_DIR_NAME))
        self.keep = keep
        self.last_good_path = os.path.join(self.dir, base + ".last-good")
        self.history_path = os.path.join(self.dir, base + ".history.jsonl")
        self.workers_dir = os.path.join(self.dir, base + ".workers")
        os.makedirs(self.workers_dir, exist_ok=True)

    # --- last good ------------------------------------------------------------------------
    def save_last_good(self, text: str) -> None:
        write_atomically(self.last_good_path, text)

    def last_good(self) -> Optional[str]:
        try:
            with open(self.last_good_path, encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return None

    # --- history --------------------------------------------------------------------------
    def history(self) -> list[HistoryEntry]:
        try:
            with open(self.history_path, encoding="utf-8") as f:
                return [HistoryEntry(**json.loads(line)) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def record(self, text: str, who: str) -> int:
        """The version of ``text``: the newest entry with its digest if that is the newest
        entry at all, otherwise a new entry appended (and old ones beyond ``keep`` dropped)."""
        digest = digest_of(text)
        with open(os.path.join(self.dir, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self.history()
            if entries and entries[-1].digest == digest:
                return entries[-1].version
            version = entries[-1].version + 1 if entries else 1
            entries.append(HistoryEntry(version, digest, who, time.time(), text))
            entries = entries[-self.keep:]
            write_atomically(self.history_path,
                             "".join(json.dumps(e.__dict__) + "\n" for e in entries))
            return version

    def entry(self, version: int) -> Optional[HistoryEntry]:
        return next((e for e in self.history() if e.version == version), None)

    # --- workers --------------------------------------------------------------------------
    def report_worker(self, version: int, digest: str) -> None:
        """Say which version this process serves (one file per process id)."""
        status = {"pid": os.getpid(), "version": version, "digest": digest, "applied": time.time()}
        write_atomically(os.path.join(self.workers_dir, f"{os.getpid()}.json"), json.dumps(status))

    def workers(self) -> list[dict]:
        """The status each live process last reported; files of dead ones are removed."""
        out = []
        try:
            names = sorted(os.listdir(self.workers_dir))
        except FileNotFoundError:
            return out
        for name in names:
            if not name.endswith(".json"):
                continue
            full = os.path.join(self.workers_dir, name)
            try:
                with open(full, encoding="utf-8") as f:
                    status = json.load(f)
            except (OSError, ValueError):
                continue
            try:
                os.kill(int(status["pid"]), 0)
            except ProcessLookupError:
                _unlink(full)
                continue
            except (OSError, KeyError, ValueError):
                continue
            out.append(status)
        return out


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
