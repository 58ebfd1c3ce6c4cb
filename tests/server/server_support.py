"""What the server tests talk to their processes with (``support.Proc`` runs them)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

APPS = Path(__file__).resolve().parent / "apps"


def ask(port: int, data: bytes = b"", timeout: float = 3.0, source: str = "127.0.0.1") -> bytes:
    """Connect, send ``data`` (then half-close), and read everything the server sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        if data:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def write_conf(path: Path, **fields) -> Path:
    lines = ["---", "version: 1"]
    for k, v in fields.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        lines.append(f"{k}: {v}")
    path.write_text("\n".join(lines) + "\n")
    return path
