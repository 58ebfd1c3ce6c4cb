"""Metrics and observability: the Prometheus endpoint, built-in metrics, the access
log, request ids and tracing."""

from .access_log import AccessLogConfig
from .builtin import BuiltinMetrics
from .observer import Observability
from .prometheus import PrometheusApp, prometheus_http_service

__all__ = ["AccessLogConfig", "BuiltinMetrics", "Observability", "PrometheusApp",
           "prometheus_http_service"]
