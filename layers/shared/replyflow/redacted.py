"""A secret string that never shows itself: :class:`Secret`, what the app secrets hold
(``adapters/secrets.py``) without pydantic's ``SecretStr`` (a cold start cost of its own, paid by the
webhook, which imports no pydantic: docs/architecture.md#cold-starts).

Invariants: ``repr``, ``str`` and formatting print a mask, never the value; only
:meth:`Secret.get_secret_value` gives it (the name ``SecretStr`` uses, so callers read either alike).
Two secrets are equal when their values are (a re-read that brings nothing new is "unchanged").
"""

from __future__ import annotations

MASK = "**********"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a secret is a string")
        self._value = value

    @classmethod
    def of(cls, value: object) -> Secret:
        """``value`` as a :class:`Secret`: a string, or anything holding one (``SecretStr``)."""
        if isinstance(value, Secret):
            return value
        read = getattr(value, "get_secret_value", None)
        return cls(read() if callable(read) else value)  # type: ignore[arg-type]  # a str, else TypeError

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK if self._value else ""

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
