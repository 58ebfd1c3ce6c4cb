"""The gateway row of the benchmark: ``propylon run -c`` with the route the issue asks
to measure — JWT auth (HS256, every request carries a valid bearer token), a rate
limit high enough never to refuse, the built-in metrics and a JSON access log to a
file — in front of the same backend as the plain forwarder and nginx.

The file is written here once for both the load test (``bench.runner``) and the
instruction count (``bench.cost``, scenario ``gateway jwt``), so they measure the
same configuration.
"""

from __future__ import annotations

__all__ = ["SECRET", "gateway_config", "bearer_token"]

#: The HS256 key of the route (a bench value: loopback only).
SECRET = "bench-secret-0123456789abcdef0123"


def gateway_config(listen: str, backend: str, metrics: str, access_log: str, server: str = "{}") -> str:
    """The gateway file: one listener on ``listen``, the backend at ``backend``, the
    metrics served on ``metrics`` and the access log written to ``access_log``;
    ``server`` is the ``server:`` section (a YAML flow mapping)."""
    return f"""\
server: {server}
listeners: [{{name: web, address: "{listen}"}}]
clusters:
  origin: {{backends: [{{address: "{backend}"}}]}}
routes:
  - name: api
    match: {{path: {{prefix: /}}}}
    proxy: {{cluster: origin}}
    plugins:
      jwt: {{algorithms: [HS256], secret: {SECRET}}}
      rate_limit: {{requests: 100000000, window: 1, per: {{ip_address: true}}}}
metrics: {{address: "{metrics}"}}
access_log: {{format: json, path: "{access_log}"}}
"""


def bearer_token() -> str:
    """A token the route accepts (no expiry: a run may last)."""
    import jwt

    return jwt.encode({"sub": "bench"}, SECRET, algorithm="HS256")
