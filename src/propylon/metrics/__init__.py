"""Metrics: the Prometheus endpoint."""

from .prometheus import PrometheusApp, prometheus_http_service

__all__ = ["PrometheusApp", "prometheus_http_service"]
