"""Meta's required callbacks of an Instagram app: data deletion and deauthorize.

Both receive ``signed_request=<sig>.<payload>`` (form-encoded): ``payload`` is base64url JSON with
``algorithm: HMAC-SHA256`` and ``user_id`` (the app-scoped id of the Instagram user), ``sig`` the
base64url HMAC-SHA256 of the payload's base64url text under the app secret. It is verified in constant
time against each configured app secret; anything else is a 400 ``invalid_signed_request``.

- **Data deletion** deletes the user's data in every tenant, in one transaction: if the user is a
  connected account, the account is disconnected (token wiped) and everything its automation recorded
  is deleted; wherever the user is a contact, the contact, the sends to them, the inbound events and
  automation decisions of those sends, and the reply logs to them are deleted. Rows are deleted, not
  anonymised (docs/architecture.md#meta-callbacks). A ``data_deletion_requests`` row with a random
  confirmation code records it (the user only as a hash); ``GET /v1/data-deletion/{code}`` reports it.
  When archives exist the request stays ``pending`` until the archive job has rewritten the archived
  objects without the user's rows (``services.jobs.archive_erasure``), then ``completed``.
- **Deauthorize**: every account that is this user becomes disconnected (``disabled``, reason
  ``deauthorized``), its token wiped, its automations paused, and its sends that had not happened are
  settled ``skipped`` with ``account_deauthorized``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pydantic
from sqlalchemy.orm import Session

from replyflow.db.repositories import meta_callbacks as repo
from replyflow.errors import BadRequestError, NotFoundError
from replyflow.ports import Cache
from replyflow.services import cache_keys, write_through
from replyflow.timestamps import UtcDateTime

DEAUTHORIZED_REASON = "deauthorized"
SETTLED_ERROR_CODE = "account_deauthorized"
MAX_SIGNED_REQUEST = 4096


class InvalidSignedRequestError(BadRequestError):
    code = "invalid_signed_request"


class SignedRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")

    algorithm: str
    user_id: str = pydantic.Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    issued_at: int | None = None


class DeletionReceipt(pydantic.BaseModel):
    """What Meta expects back from a data deletion callback."""

    url: str = pydantic.Field(description="where the user can check the deletion's status")
    confirmation_code: str


class DeletionStatus(pydantic.BaseModel):
    confirmation_code: str
    status: str = pydantic.Field(
        description="`completed`: the user's data is deleted; `pending`: deleted from the database, "
        "archived copies are being erased (the next archive run, within a day)"
    )
    requested_at: UtcDateTime
    completed_at: UtcDateTime | None


class DeauthorizeResult(pydantic.BaseModel):
    accounts_disconnected: int
    sends_settled: int


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_request(payload: dict[str, Any], secret: str) -> str:
    """A ``signed_request`` as Meta builds it (the sandbox and tests use this)."""
    body = _b64url(json.dumps({"algorithm": "HMAC-SHA256", **payload}, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), body.encode("ascii"), hashlib.sha256).digest()
    return f"{_b64url(sig)}.{body}"


def parse_signed_request(value: str, app_secrets: Sequence[bytes]) -> SignedRequest:
    refused = InvalidSignedRequestError("the signed_request is missing, malformed or not signed by this app")
    if not value or len(value) > MAX_SIGNED_REQUEST or value.count(".") != 1:
        raise refused
    sig_text, body_text = value.split(".", 1)
    try:
        sig = _b64url_decode(sig_text)
        body_text.encode("ascii")
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise refused from None
    body = body_text.encode("ascii")
    matched = False
    for secret in app_secrets:  # every secret is tried, so timing does not say which one matched
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, sig)
    if not matched:
        raise refused
    try:
        payload = json.loads(_b64url_decode(body_text))
        request = SignedRequest.model_validate(payload)
    except (binascii.Error, ValueError, pydantic.ValidationError):
        raise refused from None
    if request.algorithm.upper() != "HMAC-SHA256":
        raise refused
    return request


def _user_hash(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()


def _invalidate(session: Session, cache: Cache, tenant_id: str, account_id: str, ig_user_id: str) -> None:
    write_through.invalidate(
        session, lambda: cache_keys.invalidate_account(cache, tenant_id, account_id, ig_user_id)
    )
    write_through.invalidate(
        session, lambda: cache_keys.invalidate_automations(cache, tenant_id, [account_id])
    )


def _disconnect_user_accounts(
    session: Session, cache: Cache, user_id: str, now: datetime
) -> tuple[list[tuple[str, str]], int]:
    accounts = repo.accounts_of_user(session, user_id)
    settled = 0
    for tenant_id, account_id in accounts:
        settled += repo.disconnect_account(
            session, tenant_id, account_id, reason=DEAUTHORIZED_REASON, error_code=SETTLED_ERROR_CODE, now=now
        )
        _invalidate(session, cache, tenant_id, account_id, user_id)
    return accounts, settled


def request_deletion(
    session: Session, cache: Cache, request: SignedRequest, *, status_url: str, now: datetime
) -> DeletionReceipt:
    """Deletes the user's data everywhere and records the request; ``status_url`` has a ``{code}``."""
    erased = erase_user(session, cache, request.user_id, now=now)
    return record_deletion(session, request, erased, status_url=status_url, now=now)


@dataclass
class Erased:
    """What ``erase_user`` deleted on one database (a shard), summed over the shards."""

    counts: Counter[str] = field(default_factory=Counter)
    # Archived objects may name the user too: the archive job erases them, then completes it.
    pending: bool = False

    def add(self, other: Erased) -> Erased:
        return Erased(self.counts + other.counts, self.pending or other.pending)


def erase_user(session: Session, cache: Cache, user_id: str, *, now: datetime) -> Erased:
    """Deletes the user's data on the session's database (with tenant shards: on one shard)."""
    counts: Counter[str] = Counter()
    accounts, _settled = _disconnect_user_accounts(session, cache, user_id, now)
    for tenant_id, account_id in accounts:
        counts.update(repo.delete_account_data(session, tenant_id, account_id))
    for tenant_id in sorted(repo.tenants_naming_user(session, user_id)):
        counts.update(repo.delete_rows_naming_user(session, tenant_id, user_id))
    return Erased(counts, repo.any_archive_files(session))


def record_deletion(
    session: Session, request: SignedRequest, erased: Erased, *, status_url: str, now: datetime
) -> DeletionReceipt:
    code = secrets.token_hex(10)
    repo.record_deletion(
        session,
        code=code,
        user_hash=_user_hash(request.user_id),
        rows_deleted=sum(erased.counts.values()),
        now=now,
        pending=erased.pending,
    )
    return DeletionReceipt(url=status_url.format(code=code), confirmation_code=code)


def deletion_status(session: Session, code: str) -> DeletionStatus:
    row = repo.deletion_by_code(session, code) if len(code) <= 32 else None
    if row is None:
        raise NotFoundError("no data deletion request has this confirmation code")
    return DeletionStatus(
        confirmation_code=row.confirmation_code,
        status=row.status,
        requested_at=row.requested_at,
        completed_at=row.completed_at,
    )


def deauthorize(
    session: Session, cache: Cache, request: SignedRequest, *, now: datetime
) -> DeauthorizeResult:
    accounts, settled = _disconnect_user_accounts(session, cache, request.user_id, now)
    return DeauthorizeResult(accounts_disconnected=len(accounts), sends_settled=settled)
