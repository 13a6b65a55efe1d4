"""Logger, metrics and tracer, owned here once. Tenant and account ids go on log lines, metric
metadata and trace annotations, never into metric dimensions (unbounded cardinality).

Tracing: every handler is wrapped by the Powertools Tracer, and :func:`traced` opens a subsegment
around each remote call (Graph API, SQS publish, SQL statement) annotated with the tenant and account
bound to the current thread. botocore is patched, so AWS SDK calls get their own subsegments and SQS
messages carry the trace on to their consumers. Outside Lambda the tracer is disabled and
:func:`traced` costs one attribute check.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.tracing.base import BaseProvider

# Log lines carry the function's own service, POWERTOOLS_SERVICE_NAME from template.yaml (webhook,
# processor, sender, ...). Metrics keep one ``service`` dimension for every function on purpose: the
# dashboard and alarms in infra/observability.yaml read one series per metric, whichever function
# emits it.


class _Untraced:
    """The subsegment of :class:`_NoTracing`: every call does nothing."""

    def put_annotation(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def put_metadata(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def add_exception(self, *_args: Any, **_kwargs: Any) -> None:
        pass


class _NoTracing(BaseProvider):
    """The tracer's provider when tracing is off (outside Lambda, ``POWERTOOLS_TRACE_DISABLED``): the
    X-Ray SDK, which imports botocore, is then never imported (a cold start cost of its own)."""

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Iterator[Any]:
        yield _Untraced()

    @asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        yield _Untraced()

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass


logger = Logger()
metrics = Metrics(namespace="Replyflow", service="replyflow")
_tracing_off = bool(Tracer._is_tracer_disabled())
tracer = Tracer(
    service="replyflow",
    patch_modules=["botocore"],
    disabled=_tracing_off or None,
    provider=_NoTracing() if _tracing_off else None,
)

__all__ = ["MetricUnit", "bind_tenant", "clear_tenant", "logger", "metrics", "traced", "tracer"]

_TENANT_KEYS = ("tenant_id", "account_id")
_bound = threading.local()


def bind_tenant(tenant_id: str | None, account_id: str | None = None) -> None:
    """Attach the tenant (and account) to every following log line of this request or record, and
    to the sessions it opens (their shard is the tenant's, ``db/shards.py``).

    Thread-local: the workers handle a batch's records (of different tenants) on a thread pool."""
    logger.thread_safe_append_keys(tenant_id=tenant_id, account_id=account_id)
    _bound.tenant_id = tenant_id


def clear_tenant() -> None:
    """Forget the tenant of the previous request or record (a warm process handles many)."""
    logger.thread_safe_remove_keys(_TENANT_KEYS)
    _bound.tenant_id = None


def bound_tenant() -> str | None:
    """The tenant this thread's request or record was bound to, if any."""
    tenant_id: str | None = getattr(_bound, "tenant_id", None)
    return tenant_id


def tracing_enabled() -> bool:
    return not tracer.disabled


def trace_annotations(**extra: str | int | bool | None) -> dict[str, Any]:
    """The tenant and account bound to this thread, plus ``extra``, without the unset ones."""
    bound = logger.thread_safe_get_current_keys()
    values: dict[str, Any] = {key: bound.get(key) for key in _TENANT_KEYS}
    values.update(extra)
    return {key: value for key, value in values.items() if value is not None}


@contextmanager
def traced(name: str, **annotations: str | int | bool | None) -> Iterator[Any]:
    """A subsegment named ``name`` around a remote call; yields it (None when tracing is off)."""
    if tracer.disabled:
        yield None
        return
    with tracer.provider.in_subsegment(name) as subsegment:
        for key, value in trace_annotations(**annotations).items():
            subsegment.put_annotation(key, value)
        yield subsegment
