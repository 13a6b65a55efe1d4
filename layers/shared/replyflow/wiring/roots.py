"""Every family's composition root in one object, for a process that runs every function (the local
stack): each handler module's ``bind(roots)`` returns its entry point over the root it needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from replyflow.wiring.api import ApiDeps, AuthorizerDeps
from replyflow.wiring.jobs import JobsDeps
from replyflow.wiring.pipeline import PipelineDeps

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True, eq=False)
class Roots:
    pipeline: PipelineDeps
    jobs: JobsDeps
    api: ApiDeps
    authorizer: AuthorizerDeps
