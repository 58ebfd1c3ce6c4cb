"""nginx configurations for the benchmark, generated into a temporary directory.

The roles, all on 127.0.0.1:

* **backend**: answers every request with ``200`` and the fixed 5-byte body ``hello``
  (``return 200 "hello"``: no file I/O, so the backend is never the bottleneck's cause).
* **proxy**: a plain reverse proxy in front of the backend with upstream keep-alive
  (``keepalive 64``, ``proxy_http_version 1.1``, ``proxy_set_header Connection ""``).
* **tls** / **h2**: the same proxy, terminating TLS (HTTP/1.1) or TLS with HTTP/2.
* **gzip**: the plain proxy compressing with ``gzip on; gzip_comp_level 1;
  gzip_types text/plain; gzip_min_length 0`` (loaded on ``/text``, where the backend
  serves :data:`BACKEND_TEXT`, 4 KiB of text, from a file in its prefix).
* **cache**: the plain proxy with ``proxy_cache`` in a zone on tmpfs (``/dev/shm``
  when writable), loaded on ``/1k``, where the backend serves :data:`CACHE_BODY`
  (1 KiB, ``Cache-Control: public, max-age=3600``): fetched once, then hits.

Choices that keep the comparison fair: access logs are off everywhere (Propylon's
forwarder logs nothing per request either), and ``keepalive_requests`` is raised so
neither side spends the run reconnecting every 1000 requests (Pingora sets no such
limit by default). nginx runs in the foreground (``daemon off``) with its prefix, pid
file, error log and temp paths inside the run's directory; the ``user`` directive is
written only when running as root, naming the current user so workers can use the
private temporary directory.
"""

from __future__ import annotations

import grp
import os
import pwd
import resource
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .procs import BenchProcess, ProcessSet, StartError, free_port, lost_port_race, wait_http_ok

__all__ = ["BACKEND_BODY", "BACKEND_TEXT", "CACHE_BODY", "CACHE_PATH", "NginxRole", "NginxServer", "render_conf", "start_nginx"]

BACKEND_BODY = b"hello"
#: The compressible body of the backend's ``/text`` (4 KiB of log-like lines).
BACKEND_TEXT = b"".join(b"%04d GET /api/items?page=%d 200 text/plain keep-alive upstream=backend\n"
                        % (i, i % 7) for i in range(60))[:4096]

#: The cacheable object of the cache-hit scenarios: 1 KiB at ``/1k`` on the backend.
CACHE_PATH = "/1k"
CACHE_BODY = b"x" * 1024

NginxRole = Literal["backend", "proxy", "tls", "h2", "gzip", "cache"]

_KEEPALIVE_REQUESTS = 1_000_000
_WANTED_NOFILE = 65536


def _user_line() -> str:
    if os.geteuid() != 0:
        return ""
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};\n"


def _nofile_hard() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _WANTED_NOFILE if hard == resource.RLIM_INFINITY else min(hard, _WANTED_NOFILE)


def _rlimit_line() -> str:
    # Raising the soft limit up to the hard one needs no privilege; asking for more
    # than the hard limit only earns an alert in the error log, so never do.
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = _nofile_hard()
    return f"worker_rlimit_nofile {hard};\n" if hard > soft else ""


def _worker_connections() -> int:
    # Each proxied connection holds two descriptors (downstream and upstream).
    return max(512, min(8192, _nofile_hard() // 2 - 32))


def _server_block(role: NginxRole, port: int, cert: Path | None, key: Path | None,
                  prefix: Path) -> str:
    if role == "backend":
        return (
            "    server {\n"
            f"        listen 127.0.0.1:{port} backlog=4096;\n"
            f"        keepalive_requests {_KEEPALIVE_REQUESTS};\n"
            "        location / {\n"
            "            default_type text/plain;\n"
            f'            return 200 "{BACKEND_BODY.decode()}";\n'
            "        }\n"
            # A file (read from the page cache): a 4 KiB literal is too long for nginx.conf.
            "        location = /text {\n"
            "            default_type text/plain;\n"
            f"            alias {prefix / 'text.txt'};\n"
            "        }\n"
            f"        location = {CACHE_PATH} {{\n"
            "            default_type text/plain;\n"
            '            add_header Cache-Control "public, max-age=3600";\n'
            f'            return 200 "{CACHE_BODY.decode()}";\n'
            "        }\n"
            "    }\n"
        )
    listen = f"127.0.0.1:{port}"
    extra = ""
    if role in ("tls", "h2"):
        listen += " ssl http2" if role == "h2" else " ssl"
        extra = (
            f"        ssl_certificate {cert};\n"
            f"        ssl_certificate_key {key};\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;\n"
        )
    if role == "gzip":
        # gzip_vary: Propylon adds Vary: Accept-Encoding too, so both send the same head.
        extra = ("        gzip on;\n        gzip_comp_level 1;\n        gzip_types text/plain;\n"
                 "        gzip_min_length 0;\n        gzip_vary on;\n")
    cache = ""
    if role == "cache":
        cache = "            proxy_cache bench_cache;\n            proxy_cache_lock on;\n"
    return (
        "    server {\n"
        f"        listen {listen} backlog=4096;\n"
        f"        keepalive_requests {_KEEPALIVE_REQUESTS};\n"
        f"{extra}"
        "        location / {\n"
        f"{cache}"
        "            proxy_pass http://bench_backend;\n"
        "            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n'
        "        }\n"
        "    }\n"
    )


def render_conf(
    role: NginxRole,
    prefix: Path,
    port: int,
    workers: int,
    *,
    backend_port: int | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    cache_dir: Path | None = None,
) -> str:
    """Return the text of ``nginx.conf`` for ``role`` listening on ``127.0.0.1:port``.

    ``prefix`` is the directory holding the pid file, error log and temp paths;
    ``workers`` becomes ``worker_processes``. Front roles need ``backend_port``; the
    TLS roles need ``cert`` and ``key`` (PEM files), the cache role ``cache_dir``.
    """
    if role != "backend" and backend_port is None:
        raise ValueError(f"nginx role {role!r} needs backend_port")
    if role in ("tls", "h2") and (cert is None or key is None):
        raise ValueError(f"nginx role {role!r} needs cert and key")
    temp = "".join(
        f"    {name}_temp_path {prefix / ('tmp_' + name)};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    upstream = ""
    if role == "cache":
        if cache_dir is None:
            raise ValueError("nginx role 'cache' needs cache_dir")
        upstream = (f"    proxy_cache_path {cache_dir} levels=1:2 keys_zone=bench_cache:10m "
                    "max_size=256m inactive=1h use_temp_path=off;\n")
    if role != "backend":
        upstream += (
            "    upstream bench_backend {\n"
            f"        server 127.0.0.1:{backend_port};\n"
            "        keepalive 64;\n"
            f"        keepalive_requests {_KEEPALIVE_REQUESTS};\n"
            "    }\n"
        )
    return (
        f"{_user_line()}"
        f"worker_processes {workers};\n"
        f"pid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\n"
        f"{_rlimit_line()}"
        "events {\n"
        f"    worker_connections {_worker_connections()};\n"
        "}\n"
        "http {\n"
        "    access_log off;\n"
        "    server_tokens off;\n"
        f"{temp}"
        f"{upstream}"
        f"{_server_block(role, port, cert, key, prefix)}"
        "}\n"
    )


@dataclass
class NginxServer:
    """A running nginx: its process and the loopback port it listens on."""

    proc: BenchProcess
    port: int


def start_nginx(
    procs: ProcessSet,
    nginx: str,
    role: NginxRole,
    prefix: Path,
    workers: int,
    *,
    backend_port: int | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    cache_dir: Path | None = None,
    ready_timeout: float = 10.0,
    attempts: int = 3,
) -> NginxServer:
    """Write the conf into ``prefix`` (created), start nginx on a free port, wait for a 200.

    A port the kernel reported free can be taken by someone else before nginx binds
    it; then it tries again on another port, ``attempts`` times in all. Raises
    :class:`~bench.procs.StartError` with the error log's tail if it fails.
    """
    prefix.mkdir(parents=True, exist_ok=True)
    if role == "backend":
        (prefix / "text.txt").write_bytes(BACKEND_TEXT)
    conf = prefix / "nginx.conf"
    # -e sends start-up messages to our log instead of the compiled-in system path.
    argv = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
            "-g", "daemon off;"]
    for attempt in range(1, attempts + 1):
        port = free_port()
        conf.write_text(
            render_conf(role, prefix, port, workers, backend_port=backend_port, cert=cert, key=key,
                        cache_dir=cache_dir)
        )
        proc = procs.start(f"nginx-{role}", argv, prefix / "stderr.log",
                           stop_signal=signal.SIGTERM)
        # The error log holds the useful reason (e.g. bind() failed); point the tail at it.
        proc.log_path = prefix / "error.log"
        try:
            wait_http_ok(proc, port, https=role in ("tls", "h2"), expect_body=BACKEND_BODY,
                         timeout=ready_timeout)
        except StartError as exc:
            procs.stop(proc)
            if attempt == attempts or not lost_port_race(str(exc)):
                raise
            proc.log_path.unlink(missing_ok=True)
            continue
        return NginxServer(proc, port)
    raise AssertionError("unreachable")
