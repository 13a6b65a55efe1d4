"""A contact's custom fields and tags: which names are allowed and what a value may be.

- A field key is 1-64 characters of ``a-z``, ``0-9`` and ``_``, starting with a letter (``email``,
  ``phone``, ``shoe_size``). A value is small and typed: text (1-255 characters, trimmed, no control
  characters), a finite number, or a boolean. Two keys are typed by name: ``email`` must be an
  address (stored in its canonical form, ``domain.emails``) and ``phone`` a phone number (digits, an
  optional leading ``+``, 6-15 digits; spaces, dots, dashes and parentheses dropped).
- A value is stored as its canonical text plus its kind (:class:`FieldValue`), so "field equals" is
  one comparison of texts and the API gives back the JSON type it was given.
- A tag is 1-64 characters of letters, digits, ``_`` and ``-``, case-insensitive (stored lower case).
- A contact holds at most :data:`MAX_FIELDS` fields and :data:`MAX_TAGS` tags.

Flows capture into the same fields (``parse_field``), so what the API accepts and what a capture step
stores are one rule.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from replyflow.domain.emails import EMAIL_PATTERN, canonical_email
from replyflow.errors import ValidationError

FieldKind = Literal["text", "number", "bool", "email", "phone"]
FieldInput = str | int | float | bool

MAX_FIELDS = 50
MAX_TAGS = 50
MAX_TEXT = 255
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_EMAIL = re.compile(EMAIL_PATTERN)
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")
_PHONE_SEPARATORS = re.compile(r"[\s.\-()]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ContactFieldError(ValidationError):
    code = "invalid_contact_field"


@dataclass(frozen=True)
class FieldValue:
    kind: FieldKind
    text: str

    @property
    def value(self) -> FieldInput:
        """The value as the API returns it (a number or a boolean again)."""
        if self.kind == "bool":
            return self.text == "true"
        if self.kind == "number":
            number = float(self.text)
            return int(number) if number.is_integer() and "." not in self.text else number
        return self.text


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ContactFieldError(
            "a field name is 1-64 characters of a-z, 0-9 and _, starting with a letter",
            details={"field": key if isinstance(key, str) else None},
        )
    return key


def validate_tag(tag: str) -> str:
    value = tag.strip().lower() if isinstance(tag, str) else ""
    if not TAG_PATTERN.match(value):
        raise ContactFieldError(
            "a tag is 1-64 characters of letters, digits, _ and -", details={"tag": tag}, code="invalid_tag"
        )
    return value


def parse_field(key: str, value: FieldInput) -> FieldValue:
    """The validated, canonical form of ``value`` for field ``key``; ``ContactFieldError`` if invalid."""
    validate_key(key)
    if key == "email":
        return FieldValue("email", _email(value))
    if key == "phone":
        return FieldValue("phone", _phone(value))
    if isinstance(value, bool):
        return FieldValue("bool", "true" if value else "false")
    if isinstance(value, int):
        if abs(value) >= 10**15:
            raise ContactFieldError("a number field is below 10^15 in size", details={"field": key})
        return FieldValue("number", str(value))
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= 1e15:
            raise ContactFieldError("a number field is finite and below 10^15", details={"field": key})
        return FieldValue("number", repr(value))
    if isinstance(value, str):
        return FieldValue("text", _text(key, value))
    raise ContactFieldError("a field value is text, a number or a boolean", details={"field": key})


def parse_email(value: object) -> str:
    """An email captured from free text or a quick reply, canonical; ``ContactFieldError`` if not one."""
    return _email(value)


def parse_phone(value: object) -> str:
    return _phone(value)


def _text(key: str, value: str) -> str:
    text = value.strip()
    if not text or len(text) > MAX_TEXT or _CONTROL.search(text):
        raise ContactFieldError(
            f"a text field is 1-{MAX_TEXT} characters with no control characters", details={"field": key}
        )
    return text


def _email(value: object) -> str:
    text = canonical_email(value) if isinstance(value, str) else ""
    if not text or len(text) > 254 or not _EMAIL.match(text):
        raise ContactFieldError("email is not an email address", details={"field": "email"})
    return text


def _phone(value: object) -> str:
    text = _PHONE_SEPARATORS.sub("", value) if isinstance(value, str) else ""
    if not _PHONE.match(text):
        raise ContactFieldError("phone is 6-15 digits with an optional leading +", details={"field": "phone"})
    return text
