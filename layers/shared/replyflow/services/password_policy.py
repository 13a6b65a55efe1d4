"""The password policy, applied wherever a password is chosen: sign-up, password change, password
reset and accepting an invitation as a new user.

A password is refused (422 ``weak_password``, ``details.reason`` says why) when it is
- shorter than 10 or longer than 256 characters (``too_short`` / ``too_long``);
- the email, or contains the email's local part (``contains_email``);
- on the list of the 30,000 most common passwords from breaches, compared case-insensitively and
  with trailing digits and symbols stripped (``Password2024!`` is ``password``) (``common``);
- easy to guess for zxcvbn, the estimator of Dropbox (score below 3 of 4, about 10^8 guesses;
  dictionary words, names, keyboard walks, repeats, dates, l33t) (``guessable``).

zxcvbn ships the common-password list, so nothing here downloads anything; it is imported on first
use (only these endpoints pay for it, never a cold start of another route).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from replyflow.domain.emails import canonical_email, local_part
from replyflow.errors import ValidationError

MIN_LENGTH = 10
MAX_LENGTH = 256
MIN_SCORE = 3
_TRAILING = re.compile(r"[\W\d_]+$")


def _fold(value: str) -> str:
    return unicodedata.normalize("NFKC", value).casefold()


def _refuse(reason: str, message: str) -> ValidationError:
    return ValidationError(message, code="weak_password", details={"reason": reason})


def _common(folded: str) -> bool:
    from zxcvbn.matching import RANKED_DICTIONARIES

    common = RANKED_DICTIONARIES["passwords"]
    stripped = _TRAILING.sub("", folded)
    return folded in common or (len(stripped) >= 4 and stripped in common)


def check_password(password: str, *, email: str, other_inputs: Iterable[str] = ()) -> None:
    """Raises ``ValidationError(code="weak_password")`` when ``password`` may not be used."""
    if len(password) < MIN_LENGTH:
        raise _refuse("too_short", f"use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise _refuse("too_long", f"use at most {MAX_LENGTH} characters")
    folded, address, name = _fold(password), canonical_email(email), local_part(email)
    if address in folded or (len(name) >= 3 and name in folded):
        raise _refuse("contains_email", "the password must not contain your email address")
    if _common(folded):
        raise _refuse("common", "this password is one of the most common ones from breaches; choose another")
    from zxcvbn import zxcvbn

    inputs = [address, name, *(value for value in other_inputs if value)]
    result = zxcvbn(password[:100], user_inputs=inputs)  # zxcvbn is superlinear; 100 characters decide
    if int(result["score"]) < MIN_SCORE:
        hint = str(result["feedback"].get("warning") or "") or "add more words or characters"
        raise _refuse("guessable", f"this password is easy to guess: {hint}")
