"""Per-day flow step counters on the real MariaDB: the scenario of ``tests/unit/test_flow_runs``
(a conversation across midnight counted on each day, adding up to the totals), on the pipeline."""

from __future__ import annotations

import pytest

from tests.unit.test_flow_runs import make_world, per_day_scenario

pytestmark = pytest.mark.integration


def test_step_counters_are_kept_per_day_on_mariadb(mysql_url: str) -> None:
    per_day_scenario(make_world(mysql_url))
