"""The load test's scenario definitions and verdict logic (``bench.loadtest``), without running Locust:
``import locust`` monkey-patches the process, so the locustfile is only listed in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.loadtest import scenarios
from bench.loadtest.scenarios import (
    SCENARIOS,
    Check,
    api_figures,
    budget_for,
    histogram_percentile,
    scenario_seconds,
    sign,
    verdict,
    webhook_body,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_four_scenarios_of_the_guide_are_defined_once() -> None:
    assert [s.name for s in SCENARIOS] == ["sessions", "webhook_bursts", "dm_sending", "subscription_spikes"]
    assert len({s.user_class for s in SCENARIOS}) == 4
    assert all(s.users > 0 and s.spawn_rate > 0 for s in SCENARIOS)
    judged = {m for s in SCENARIOS for m in s.judged_on}
    assert judged == {"api", "job", "query"}
    assert scenarios.BY_NAME["dm_sending"].judged_on == ("api", "job", "query")


def test_the_scenarios_share_the_run_time_and_each_gets_at_least_ten_seconds() -> None:
    total = 120
    seconds = [scenario_seconds(total, s) for s in SCENARIOS]
    assert abs(sum(seconds) - total) <= len(SCENARIOS)
    assert all(s >= 10 for s in (scenario_seconds(5, s) for s in SCENARIOS))


def test_the_locustfile_defines_every_scenarios_user_class() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "bench/loadtest/locustfile.py"), "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for scenario in SCENARIOS:
        assert scenario.user_class in listed.stdout


def test_webhook_bodies_are_signed_like_meta_signs_them() -> None:
    body = webhook_body(
        [("178414", "179001", "LINK please"), ("178415", "179002", "nice")], now=1_700_000_000
    )
    parsed = json.loads(body)
    assert parsed["object"] == "instagram"
    assert [e["changes"][0]["value"]["id"] for e in parsed["entry"]] == ["179001", "179002"]
    assert parsed["entry"][0]["time"] == 1_700_000_000
    import hashlib
    import hmac

    assert sign("s3cret", body) == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


def test_budgets_sit_just_above_what_the_run_sends() -> None:
    assert budget_for(100) == 111
    assert budget_for(0) == 1
    assert budget_for(10_000) == 750  # Instagram's ceiling


def test_percentiles_from_locusts_histogram() -> None:
    times = {"10": 90, "250": 10}
    assert histogram_percentile(times, 50) == 10.0
    assert histogram_percentile(times, 95) == 250.0
    assert histogram_percentile({}, 95) is None
    stats = [
        {
            "name": "/v1/a",
            "method": "GET",
            "num_requests": 90,
            "num_failures": 1,
            "response_times": {"10": 90},
        },
        {
            "name": "/v1/b",
            "method": "GET",
            "num_requests": 10,
            "num_failures": 0,
            "response_times": {"250": 10},
        },
    ]
    login = {"name": "/v1/auth/login", "method": "POST", "num_requests": 5, "response_times": {"900": 5}}
    figures = api_figures([*stats, login])
    assert figures["n"] == 100
    assert figures["failures"] == 1
    assert figures["p95_ms"] == 250.0
    assert figures["requests"]["GET /v1/a"]["p95_ms"] == 10.0
    assert figures["requests"]["POST /v1/auth/login"]["p95_ms"] == 900.0  # reported, not judged


def test_the_verdict_passes_under_the_targets_and_fails_over_them_or_without_samples() -> None:
    results = {
        "sessions": {"api": {"p95_ms": 150.0, "n": 500}, "query": {"p95_ms": 4.0, "n": 9000}},
        "webhook_bursts": {"api": {"p95_ms": 250.0, "n": 500}, "query": {"p95_ms": 4.0, "n": 9000}},
        "dm_sending": {"api": {"p95_ms": 20.0, "n": 50}, "job": {"p95_ms": 6000.0, "n": 50}},
    }
    checks = {(c.scenario, c.metric): c for c in verdict(results)}
    assert checks["sessions", "api"].passed
    assert not checks["webhook_bursts", "api"].passed
    assert not checks["dm_sending", "job"].passed
    assert not checks["dm_sending", "query"].passed  # no samples is no pass
    assert not checks["subscription_spikes", "api"].passed
    assert checks["sessions", "api"].line().startswith("PASS")
    assert "target < 5000 ms" in checks["dm_sending", "job"].line()
    assert not Check("x", "api", 200.0, 200.0, 1).passed  # the target is strict
