"""Propylon's benchmark harness: Propylon against nginx, measured in the same run.

Run ``python -m bench`` (or ``make bench ARGS="--duration 5"``). It starts, on free
127.0.0.1 ports and inside a temporary directory, an nginx backend that answers
``200 hello``, an nginx reverse proxy before it and Propylon's forwarder
(``bench/forwarder.py``) before it, loads each with wrk (h2load for HTTP/2) using the
same parameters, and prints req/s, p50, p99, errors and CPU per scenario, with
Propylon's figures as ratios to nginx's. Speed is measured here, never in unit tests.

Modules: ``cli`` (options, orchestration), ``scenarios`` (the registry), ``runner``
(servers and measurement), ``nginx`` (configs), ``wrk`` / ``h2load`` (load generators
and their parsers), ``report`` (table, ratios, JSON), ``machine`` (tools, versions),
``procs`` (child processes), ``tlscert`` (run-time certificate), ``forwarder``.
"""
