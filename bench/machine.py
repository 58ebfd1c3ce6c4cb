"""The machine and tools a run used: finding nginx/wrk/h2load and recording versions."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from typing import Iterable

__all__ = ["APT_PACKAGES", "find_tools", "machine_info", "missing_tools_message"]

# Debian package providing each program.
APT_PACKAGES = {"nginx": "nginx", "wrk": "wrk", "h2load": "nghttp2-client", "varnishd": "varnish"}


def _which(name: str) -> str | None:
    # nginx lives in /usr/sbin, which a non-root PATH often lacks.
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK):
            return path
    return None


def find_tools(names: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Locate each program; returns (found name → path, missing names)."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in dict.fromkeys(names):
        path = _which(name)
        if path:
            found[name] = path
        else:
            missing.append(name)
    return found, missing


def missing_tools_message(missing: list[str]) -> str:
    """What is missing and the command that installs it (nothing is installed for you)."""
    pkgs = " ".join(dict.fromkeys(APT_PACKAGES.get(m, m) for m in missing))
    return (
        f"missing: {', '.join(missing)}\n"
        f"install with: apt-get install {pkgs}\n"
        "(all benchmark tools: apt-get install nginx wrk nghttp2-client varnish)"
    )


def _version(argv: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    m = re.search(pattern, done.stdout + done.stderr)
    return m.group(1) if m else "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _source_revision() -> str:
    # Figures only mean something next to the code that produced them.
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no",
                                "--", "src", "bench"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _hot_path_build() -> str:
    """Whether the engine that will be measured is the compiled build (see setup.py)."""
    try:
        import importlib.machinery

        import propylon.proxy.engine as engine
    except ImportError:
        return "propylon not importable"
    compiled = any(engine.__file__.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)
    return "compiled" if compiled else "pure Python (no C compiler at install?)"


def machine_info(tools: dict[str, str]) -> dict[str, str]:
    """nproc, CPU model, kernel, load, the source revision and the versions of Python
    and each found tool."""
    info = {
        "nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count()),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        # Other work on the machine skews every figure; record how busy it was.
        "loadavg": "%.2f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else "unknown",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
    }
    info["propylon"] = _source_revision()
    info["hot path"] = _hot_path_build()
    try:
        import uvloop  # noqa: F401  (version only; the forwarder uses it when present)

        info["uvloop"] = uvloop.__version__
    except ImportError:
        info["uvloop"] = "not installed"
    if "nginx" in tools:
        info["nginx"] = _version([tools["nginx"], "-v"], r"nginx/(\S+)")
    if "wrk" in tools:
        info["wrk"] = _version([tools["wrk"], "-v"], r"wrk (\S+)")
    if "h2load" in tools:
        info["h2load"] = _version([tools["h2load"], "--version"], r"nghttp2/(\S+)")
    return info
