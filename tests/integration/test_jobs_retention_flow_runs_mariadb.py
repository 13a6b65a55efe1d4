"""Retention of flow runs on the real MariaDB: the scenario of ``tests/unit/test_jobs_retention_flow_runs``
(finished runs past the plan's retention go with their timers, active runs stay), tenants of its own."""

from __future__ import annotations

import pytest

from tests.unit.test_jobs_retention_flow_runs import scenario

pytestmark = pytest.mark.integration


def test_finished_flow_runs_are_pruned_by_plan_retention_on_mariadb(mysql_url: str) -> None:
    scenario(mysql_url)
