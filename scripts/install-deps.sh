#!/usr/bin/env bash
# Installs what Propylon's tests, examples and benchmarks use on a fresh Debian machine:
# the system tools (nginx, redis-server, curl, nghttp2-client, wrk, varnish, netcat, gcc, libnghttp2-dev,
# and chromium for the dashboard's browser test, driven by Playwright without its own browser
# download) and the package itself with its dev extra (which compiles the hot path, see setup.py).
# Safe to run again: it skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need=()
# gcc (with the C library headers) compiles the HTTP/1 hot path; without it the
# package installs as pure Python, which works but is slower.
for pair in nginx:nginx redis-server:redis-server curl:curl h2load:nghttp2-client wrk:wrk varnishd:varnish nc:netcat-openbsd gcc:gcc chromium:chromium; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
[ -e /usr/include/stdio.h ] || need+=(libc6-dev)
# libnghttp2's headers let the build compile the native HTTP/2 codec; without them
# the pure-Python h2 codec is used.
[ -e /usr/include/nghttp2/nghttp2.h ] || need+=(libnghttp2-dev)
"$PY" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# nginx, redis and varnish are started by the tests and benchmarks themselves, never as
# system services.
$PY -m pip install -q --disable-pip-version-check -e '.[dev]'
