"""Prometheus and Grafana: every metric of streaming/metrics.py is scraped, charted and real."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import Counter, Gauge, Histogram

from streaming import metrics

from .manifests import INFRA, compose, render_overlay

DASHBOARD = INFRA / "compose" / "grafana" / "dashboards" / "dasan-overview.json"
ALERTS = INFRA / "compose" / "prometheus" / "alerts.yml"
PROMETHEUS = INFRA / "compose" / "prometheus" / "prometheus.yml"
METRIC = re.compile(r"\bdasan_[a-z_]+\b")


def exported_series() -> dict[str, set[str]]:
    """{metric family: series names it exports} for every metric in streaming.metrics."""
    out: dict[str, set[str]] = {}
    for obj in vars(metrics).values():
        if isinstance(obj, Counter):
            out[obj._name] = {f"{obj._name}_total"}
        elif isinstance(obj, Histogram):
            out[obj._name] = {f"{obj._name}_{s}" for s in ("bucket", "sum", "count")}
        elif isinstance(obj, Gauge):
            out[obj._name] = {obj._name}
    return out


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_charts_every_metric_and_only_real_ones() -> None:
    families = exported_series()
    assert len(families) >= 7
    used = {m for e in dashboard_exprs() for m in METRIC.findall(e)}
    valid = set().union(*families.values())
    assert used <= valid, f"dashboard queries unknown series: {sorted(used - valid)}"
    for family, series in families.items():
        assert used & series, f"{family} is not on the dashboard"
    # The headline views the operators need.
    exprs = "\n".join(dashboard_exprs())
    for needle in (
        "histogram_quantile(0.95",
        "dasan_consumer_lag",
        "dasan_dead_letters_total",
        "dasan_active_calls",
    ):
        assert needle in exprs


def test_dashboard_is_provisioned_with_its_datasource() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ds = yaml.safe_load((INFRA / "compose/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == uid
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24


def test_alert_rules_use_real_series_and_k8s_has_the_same() -> None:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    valid = set().union(*exported_series().values())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert METRIC.findall(rule["expr"]) or "up{" in rule["expr"]
            assert set(METRIC.findall(rule["expr"])) <= valid, rule["alert"]
    k8s = {r["metadata"]["name"]: r for r in render_overlay("production") if r["kind"] == "PrometheusRule"}
    assert k8s["dasan"]["spec"] == rules, "infra/k8s/monitoring/rules.yaml differs from compose alerts.yml"
    cm = next(r for r in render_overlay("production") if r["metadata"]["name"] == "dasan-grafana-dashboard")
    assert json.loads(cm["data"]["dasan-overview.json"]) == json.loads(DASHBOARD.read_text(encoding="utf-8"))


def up_jobs(expr: str) -> set[str]:
    """The jobs of an ``up{job=~"a|b"}`` selector."""
    m = re.search(r'up\{job=~"([^"]+)"\}', expr)
    assert m, expr
    return set(m[1].split("|"))


def test_prometheus_scrapes_each_service_on_its_port() -> None:
    prom = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    services = compose()["services"]
    for name in ("asr-gateway", "asr-worker", "assist", "assist-summaries", "console"):
        sd = jobs[name]["dns_sd_configs"][0]
        assert sd["names"] == [name]
        assert str(sd["port"]) == services[name]["environment"]["HEALTHCHECK_PORT"]
    assert prom["rule_files"] == ["/etc/prometheus/alerts.yml"]
    # every long-running Dasan service is scraped, and alerted on when down
    ours = {n for n, s in services.items() if str(s.get("image", "")).startswith("${DASAN_")} - {"kafka-init"}
    assert ours <= set(jobs), sorted(ours - set(jobs))
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    down = next(r for g in rules["groups"] for r in g["rules"] if r["alert"] == "DasanServiceDown")
    assert up_jobs(down["expr"]) == ours
    assert up_jobs(next(e for e in dashboard_exprs() if "up{job=~" in e)) == ours
    mounted = {v.split(":")[1] for v in services["prometheus"]["volumes"]}
    assert "/etc/prometheus/alerts.yml" in mounted and "/etc/prometheus/prometheus.yml" in mounted
