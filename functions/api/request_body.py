"""How the API reads a request body: the bytes API Gateway delivered, through the one decoder.

Powertools' event turns a base64 body into text with a bare ``.decode()`` and its validation parses
JSON with ``json.loads``; invalid UTF-8, bad base64, ``NaN``, a 5,000-digit integer or 10,000 nested
arrays then escape as exceptions no handler can tell from a bug (a 500). This event class reads the
body once, bounded by :data:`MAX_BODY_BYTES`, and decodes it with :func:`replyflow.json_input.decode_json`,
so each of those is a typed 400/413 mapped by ``api.errors``.

Every route takes JSON, except the routes whose body fields are all ``Form`` fields (Meta's callbacks,
which Meta posts form-encoded): those take ``application/x-www-form-urlencoded`` only. Powertools would
also parse multipart bodies, and its multipart parser lets a ``ValueError`` escape (no boundary, a
character outside Latin-1): a 500. The resolver's request validation is therefore swapped for one that
reads JSON (or, on a form route, a urlencoded form, through the same bounded UTF-8 read) or refuses the
content type (415).
Both overrides touch Powertools internals (``_to_proxy_event``, ``_get_body``); the version is pinned
and ``tests/unit/test_api_hostile_input.py`` fails if an upgrade moves them.
"""

from __future__ import annotations

import base64
import binascii
from functools import cached_property
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType
from aws_lambda_powertools.event_handler.openapi.params import Form
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from replyflow.errors import MalformedJsonError, PayloadTooLargeError
from replyflow.json_input import decode_json, utf8_text

# The largest body any route takes (an automation with every keyword and rule) is a few KB.
MAX_BODY_BYTES = 64 * 1024


class JsonBodyEvent(APIGatewayProxyEvent):
    @cached_property
    def raw_body(self) -> bytes:
        body = self.body
        if not body:
            return b""
        if self.is_base64_encoded:
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise MalformedJsonError("the body is flagged base64 but is not valid base64") from None
        else:
            raw = body.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLargeError(
                f"the body is larger than {MAX_BODY_BYTES} bytes", details={"limit": MAX_BODY_BYTES}
            )
        return raw

    @cached_property
    def decoded_body(self) -> str | None:
        return utf8_text(self.raw_body) if self.body else self.body

    @cached_property
    def json_body(self) -> Any:
        raw = self.raw_body
        return decode_json(raw) if raw else None


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in ("", "application/json") or (media.startswith("application/") and media.endswith("+json"))


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def is_form(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == FORM_CONTENT_TYPE


def takes_form(route: Any) -> bool:
    """True for a route whose body fields are all ``Form`` fields."""
    params = list(getattr(getattr(route, "dependant", None), "body_params", None) or [])
    return bool(params) and all(isinstance(p.field_info, Form) for p in params)


def _unsupported(content_type: str | None) -> RequestUnsupportedContentType:
    return RequestUnsupportedContentType(
        "Unsupported content type",
        errors=[{"type": "unsupported_content_type", "loc": ("body",), "msg": str(content_type)}],
    )


class JsonOnlyValidation(OpenAPIRequestValidationMiddleware):
    def _get_body(self, app: Any) -> Any:
        content_type = app.current_event.headers.get("content-type")
        if takes_form(app.context.get("_route")):
            if not is_form(content_type):
                raise _unsupported(content_type)
            return self._parse_form_data(app)
        if not is_json(content_type):
            raise _unsupported(content_type)
        return app.current_event.json_body


class JsonBodyResolver(APIGatewayRestResolver):
    """``APIGatewayRestResolver`` whose ``current_event`` is a :class:`JsonBodyEvent` and whose
    request validation reads JSON bodies only."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self._enable_validation:
            self._request_validation_middleware = JsonOnlyValidation()

    def _to_proxy_event(self, event: dict[str, Any]) -> BaseProxyEvent:
        return JsonBodyEvent(event, self._json_body_deserializer)
