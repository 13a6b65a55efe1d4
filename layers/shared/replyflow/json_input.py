"""The one JSON decoder for bytes that arrive from outside: API bodies, webhook bodies, queue messages
and cursors all go through :func:`decode_json`.

Python's ``json.loads`` accepts more than JSON and fails in ways a caller cannot map to a 4xx: it
parses ``NaN``/``Infinity`` (which no JSON encoder may write back, so a stored value breaks the next
reader), turns ``1e999`` into ``inf``, raises a plain ``ValueError`` on integers over 4,300 digits and
a ``RecursionError`` on deep nesting, and the bytes may not be UTF-8 at all. Here every one of those
is a :class:`~replyflow.errors.MalformedJsonError` (400, ``malformed_json``) and nothing else leaves:

- the bytes must be UTF-8 (a leading BOM is refused like any other non-JSON byte);
- integers must fit a signed 64-bit column (every integer Replyflow stores or queries does), so no
  model, query or queue message ever meets a bigger one;
- numbers must be finite; ``NaN``, ``Infinity`` and ``-Infinity`` are refused;
- arrays and objects nest at most :data:`MAX_DEPTH` levels (Instagram's deepest payload has 6);
- ``max_bytes`` bounds the body before any of it is parsed (:class:`PayloadTooLargeError`, 413).
"""

from __future__ import annotations

import json
import math
from typing import Any

from replyflow.errors import MalformedJsonError, PayloadTooLargeError

MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A 64-bit integer has at most 19 digits (and a sign); longer literals are refused before int() runs.
_MAX_INT_CHARS = 20


def _parse_int(literal: str) -> int:
    value = int(literal) if len(literal) <= _MAX_INT_CHARS else None
    if value is None or not INT64_MIN <= value <= INT64_MAX:
        raise MalformedJsonError("an integer in the body does not fit 64 bits")
    return value


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise MalformedJsonError("a number in the body is too large to be finite")
    return value


def _refuse_constant(name: str) -> Any:
    raise MalformedJsonError(f"{name} is not JSON")


def utf8_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJsonError("the body is not valid UTF-8") from None


def _check_depth(value: Any) -> None:
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise MalformedJsonError(f"the body nests deeper than {MAX_DEPTH} levels")
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                pending.append((child, depth + 1))


def decode_json(raw: bytes | str, *, max_bytes: int | None = None) -> Any:
    """The value of a JSON document, under the rules in the module docstring."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise PayloadTooLargeError(f"the body is larger than {max_bytes} bytes", details={"limit": max_bytes})
    text = utf8_text(raw) if isinstance(raw, bytes) else raw
    try:
        value = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant
        )
    except RecursionError:
        raise MalformedJsonError(f"the body nests deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as error:
        raise MalformedJsonError(
            f"the body is not valid JSON: {error.msg} at character {error.pos}"
        ) from None
    if isinstance(value, dict | list):
        _check_depth(value)
    return value
