"""Email addresses as identities: one canonical form, decided once.

- :func:`canonical_email` (NFKC, case folding, NFKC again, trimmed) is the form that is stored, that
  the unique index compares (a binary collation on MySQL, so the database never folds further) and
  that every lookup uses. Full-width and other compatibility variants (``admin@example.com`` typed
  in full-width letters, U+FF41 and on) are the same identity as their plain form.
- :func:`limiter_email` also drops accents (``admín`` -> ``admin``) and is used only for rate-limit
  keys: look-alike addresses are different identities, but they share one attempt budget, so a
  brute force cannot multiply its guesses by spelling one address many ways.
"""

from __future__ import annotations

import unicodedata

from pydantic import BaseModel, ConfigDict

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def canonical_email(email: str) -> str:
    once = unicodedata.normalize("NFKC", email.strip())
    return unicodedata.normalize("NFKC", once.casefold()).strip()


def limiter_email(email: str) -> str:
    decomposed = unicodedata.normalize("NFKD", canonical_email(email))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", bare)


def local_part(email: str) -> str:
    return canonical_email(email).rpartition("@")[0]


class OutgoingEmail(BaseModel):
    """One plain-text message. ``kind`` names the flow (``invitation``, ``password_reset``)."""

    model_config = ConfigDict(frozen=True)

    to: str
    subject: str
    text: str
    kind: str
    tenant_id: str | None = None
