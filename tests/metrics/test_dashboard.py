"""The Grafana dashboard parses and queries only metrics Propylon exposes."""

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from propylon.metrics import BuiltinMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "conf" / "grafana" / "propylon.json"


def exposed_names() -> set[str]:
    registry = CollectorRegistry()
    registry.register(BuiltinMetrics())
    text = generate_latest(registry).decode()
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def test_dashboard_queries_known_metrics():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["__inputs"][0]["pluginId"] == "prometheus" and dash["uid"]
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = {re.sub(r"_(bucket|count|sum)$", "", n) for e in exprs for n in re.findall(r"propylon_\w+", e)}
    families = {n.removesuffix("_total") for n in exposed_names()}
    used = {n.removesuffix("_total") for n in used}
    assert used <= families, used - families
    assert families <= used, f"not on the dashboard: {families - used}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
