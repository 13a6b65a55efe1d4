"""Account state changes the jobs make: flagging an account whose token no longer works."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from sqlalchemy.orm import Session

from replyflow.adapters.crypto import TokenCipher
from replyflow.db.models import InstagramAccount
from replyflow.ports import Cache
from replyflow.services import cache_keys

NEEDS_REAUTH = "needs_reauth"


def decrypt_token(cipher: TokenCipher, account: InstagramAccount) -> str | None:
    """The account's token, or None when the stored ciphertext does not decrypt (key rotated, copied)."""
    try:
        return cipher.decrypt(account.access_token_encrypted, context=account.id)
    except (ValueError, InvalidTag):
        return None


def flag_needs_reauth(session: Session, cache: Cache, account: InstagramAccount, reason: str) -> None:
    """Commit ``needs_reauth`` with the reason, then drop the cached routing so the pipeline sees it."""
    account.status = NEEDS_REAUTH
    account.status_reason = reason[:255]
    session.commit()
    cache_keys.invalidate_account(cache, account.tenant_id, account.id, account.ig_user_id)
