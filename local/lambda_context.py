"""Invoke a function's ``lambda_handler`` in this process the way the Lambda runtime would.

A :class:`LambdaFunction` imports its handler lazily by the template's handler string
(``webhook.handler.lambda_handler``), on first invocation like a cold start, and passes a
:class:`LambdaContext` with the attributes Powertools reads (function name, memory, ARN, request id,
remaining time). The deadline is informational: the local stack does not kill a handler that runs
over its ``Timeout``, it logs a warning, because killing a thread is not possible in Python and the
result of a late invocation is still worth seeing during development.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local.template import ACCOUNT_ID, REGION, FunctionSpec

if TYPE_CHECKING:
    from replyflow.wiring.roots import Roots

log = logging.getLogger("local.lambda")

Handler = Callable[[Any, Any], Any]


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: float
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{self.aws_request_id[:8]}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def import_handler(handler: str, roots: Roots | None = None) -> Handler:
    """``"webhook.handler.lambda_handler"`` -> the function object (raises ImportError/AttributeError).

    With ``roots``, the module's ``bind(roots)`` instead: the same entry point over the given
    composition roots rather than the module's own, built from the environment."""
    module_name, _, attribute = handler.rpartition(".")
    if not module_name:
        raise ImportError(f"handler {handler!r} is not 'module.function'")
    module = importlib.import_module(module_name)
    bind = getattr(module, "bind", None) if roots is not None else None
    fn = bind(roots) if callable(bind) else getattr(module, attribute)
    if not callable(fn):
        raise TypeError(f"{handler} is not callable")
    return fn


class LambdaFunction:
    """One template function bound to its handler; thread-safe (handlers run concurrently)."""

    def __init__(
        self, spec: FunctionSpec, handler: Handler | None = None, roots: Roots | None = None
    ) -> None:
        self.spec = spec
        self._handler = handler
        self._roots = roots
        self._lock = threading.Lock()

    def use_roots(self, roots: Roots) -> None:
        """Run on ``roots`` (before the first invocation: the handler is bound once)."""
        with self._lock:
            self._roots = roots

    @property
    def name(self) -> str:
        return self.spec.logical_id

    def handler(self) -> Handler:
        if self._handler is None:
            with self._lock:
                if self._handler is None:
                    self._handler = import_handler(self.spec.handler, self._roots)
        return self._handler

    def new_context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.spec.logical_id,
            memory_limit_in_mb=self.spec.memory,
            timeout_seconds=float(self.spec.timeout),
        )

    def invoke(self, event: Any) -> Any:
        handler = self.handler()
        context = self.new_context()
        started = time.monotonic()
        try:
            return handler(event, context)
        finally:
            elapsed = time.monotonic() - started
            if elapsed > self.spec.timeout:
                log.warning(
                    "%s ran %.1f s, over its %d s Timeout (AWS would have stopped it)",
                    self.name,
                    elapsed,
                    self.spec.timeout,
                )
