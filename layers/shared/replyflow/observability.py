"""Logger and metrics, owned here once. Tenant and account ids go on log lines and metric metadata,
never into metric dimensions (unbounded cardinality)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="replyflow")
metrics = Metrics(namespace="Replyflow", service="replyflow")

__all__ = ["MetricUnit", "bind_tenant", "logger", "metrics"]


def bind_tenant(tenant_id: str | None, account_id: str | None = None) -> None:
    """Attach the tenant (and account) to every following log line of this request or record."""
    logger.append_keys(tenant_id=tenant_id, account_id=account_id)
