"""infra/monitoring/: the Prometheus scrape config points at the local stack's /metrics, and every
series the Grafana dashboard reads is one the local stack exposes (local/prometheus.py) or an EMF
metric the code emits, so a renamed metric breaks this test rather than a panel."""

from __future__ import annotations

import json
import re

import yaml

from tests.infra.conftest import INFRA_DIR, ROOT

MONITORING = INFRA_DIR / "monitoring"
SERIES = re.compile(r"\breplyflow_([A-Za-z0-9_]+)")
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_seconds")


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return _base(name[: -len(suffix)])
    return name


def _known_names() -> set[str]:
    source = (ROOT / "local" / "prometheus.py").read_text()
    names = {_base(n) for n in SERIES.findall(source)}
    names |= {_base(m) for m in re.findall(r'f"\{PREFIX\}_([A-Za-z0-9_]+)"', source)}
    for path in [*ROOT.glob("functions/**/*.py"), *ROOT.glob("layers/shared/replyflow/**/*.py")]:
        text = path.read_text()
        names |= set(re.findall(r'add_metric\(\s*name="([A-Za-z0-9_]+)"', text))
        names |= set(re.findall(r'"[a-z]+": "((?:Messages|Sends)[A-Za-z]+)"', text))
        names |= {f"Events{w.title()}" for w in re.findall(r'"(processed|duplicate|queued)"', text)}
    return names


def test_the_scrape_config_reads_the_local_stack() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:3000"]


def test_every_dashboard_series_is_exposed_or_emitted() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    known = _known_names()
    used = {
        _base(name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in SERIES.findall(target["expr"])
    }
    assert used, "the dashboard reads no series"
    assert used <= known, sorted(used - known)
    titles = {panel["title"] for panel in dashboard["panels"]}
    # The CloudWatch dashboard's panels that have a local counterpart.
    assert {
        "API latency (ms)",
        "Queue depth (visible)",
        "DLQ depth",
        "Worker duration p95 (ms; target 5 s)",
    } <= titles
