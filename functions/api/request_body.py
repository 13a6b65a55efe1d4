"""How the API reads a request body: the bytes API Gateway delivered, through the one decoder.

Powertools' event turns a base64 body into text with a bare ``.decode()`` and its validation parses
JSON with ``json.loads``; invalid UTF-8, bad base64, ``NaN``, a 5,000-digit integer or 10,000 nested
arrays then escape as exceptions no handler can tell from a bug (a 500). This event class reads the
body once, bounded by :data:`MAX_BODY_BYTES`, and decodes it with :func:`replyflow.json_input.decode_json`,
so each of those is a typed 400/413 mapped by ``api.errors``.
"""

from __future__ import annotations

import base64
import binascii
from functools import cached_property
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
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


class JsonBodyResolver(APIGatewayRestResolver):
    """``APIGatewayRestResolver`` whose ``current_event`` is a :class:`JsonBodyEvent`."""

    def _to_proxy_event(self, event: dict[str, Any]) -> BaseProxyEvent:
        return JsonBodyEvent(event, self._json_body_deserializer)
