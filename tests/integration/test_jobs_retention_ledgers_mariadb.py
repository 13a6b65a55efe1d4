"""Retention of the ledgers on the real MariaDB: the scenario of ``tests/unit/test_jobs_retention_ledgers``
(archived first, chunked deletes by plan retention, pending sends kept), with tenants of its own."""

from __future__ import annotations

from tests.unit.test_jobs_retention_ledgers import scenario


def test_ledgers_are_archived_then_pruned_by_plan_retention_on_mariadb(mysql_url: str) -> None:
    scenario(mysql_url)
