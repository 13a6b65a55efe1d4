"""Logger and metrics, owned here once. Tenant and account ids go on log lines and metric metadata,
never into metric dimensions (unbounded cardinality)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

# Log lines carry the function's own service, POWERTOOLS_SERVICE_NAME from template.yaml (webhook,
# processor, sender, ...). Metrics keep one ``service`` dimension for every function on purpose: the
# dashboard and alarms in infra/observability.yaml read one series per metric, whichever function
# emits it.
logger = Logger()
metrics = Metrics(namespace="Replyflow", service="replyflow")

__all__ = ["MetricUnit", "bind_tenant", "clear_tenant", "logger", "metrics"]

_TENANT_KEYS = ("tenant_id", "account_id")


def bind_tenant(tenant_id: str | None, account_id: str | None = None) -> None:
    """Attach the tenant (and account) to every following log line of this request or record.

    Thread-local: the workers handle a batch's records (of different tenants) on a thread pool."""
    logger.thread_safe_append_keys(tenant_id=tenant_id, account_id=account_id)


def clear_tenant() -> None:
    """Forget the tenant of the previous request or record (a warm process handles many)."""
    logger.thread_safe_remove_keys(_TENANT_KEYS)
