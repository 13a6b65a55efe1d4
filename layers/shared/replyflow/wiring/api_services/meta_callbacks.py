"""Meta's data deletion and deauthorize callbacks.

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import UnitOfWork, service_module

if TYPE_CHECKING:
    from replyflow.adapters.secrets import AppSecrets
    from replyflow.ports import (
        Cache,
        NowClock,
    )
    from replyflow.services import meta_callbacks
else:  # each module imported when a service object first calls into it
    meta_callbacks = service_module("meta_callbacks")


@dataclass(frozen=True, eq=False)
class MetaCallbackService:
    """Meta's data-deletion and deauthorize callbacks. The ``signed_request`` is verified with the app
    secrets, re-read once when it fails (a rotated app secret)."""

    unit_of_work: UnitOfWork
    cache: Cache
    app_secrets: Callable[[], AppSecrets]
    clock: NowClock
    shard_scopes: Callable[[], list[AbstractContextManager[None]]]
    """One scope per shard the callbacks must reach (``Clients.shard_scopes``)."""

    def _parse(self, signed_request: str) -> meta_callbacks.SignedRequest:
        from replyflow.adapters.secrets import with_fresh_retry

        return with_fresh_retry(
            self.app_secrets(),
            lambda values: meta_callbacks.parse_signed_request(signed_request, values.app_secrets),
            (meta_callbacks.InvalidSignedRequestError,),
        )

    def request_deletion(self, signed_request: str, *, status_url: str) -> meta_callbacks.DeletionReceipt:
        request = self._parse(signed_request)
        now = self.clock.now()
        scopes = self.shard_scopes()
        if len(scopes) == 1:  # one database: erase and record in one unit of work
            with self.unit_of_work() as session:
                return meta_callbacks.request_deletion(
                    session, self.cache, request, status_url=status_url, now=now
                )
        erased = meta_callbacks.Erased()
        for scope in scopes:  # the user may be named on every shard
            with scope, self.unit_of_work() as session:
                erased = erased.add(meta_callbacks.erase_user(session, self.cache, request.user_id, now=now))
        with self.unit_of_work() as session:
            return meta_callbacks.record_deletion(session, request, erased, status_url=status_url, now=now)

    def deletion_status(self, code: str) -> meta_callbacks.DeletionStatus:
        # The writer: Meta may look right after the callback.
        with self.unit_of_work() as session:
            return meta_callbacks.deletion_status(session, code)

    def deauthorize(self, signed_request: str) -> meta_callbacks.DeauthorizeResult:
        request = self._parse(signed_request)
        now = self.clock.now()
        results = []
        for scope in self.shard_scopes():  # one scope per shard (one without shards)
            with scope, self.unit_of_work() as session:
                results.append(meta_callbacks.deauthorize(session, self.cache, request, now=now))
        return meta_callbacks.DeauthorizeResult(
            accounts_disconnected=sum(r.accounts_disconnected for r in results),
            sends_settled=sum(r.sends_settled for r in results),
        )
