"""The request and response values passed between the HTTP adapter and the sandbox app."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The JSON body; ``ValueError`` if it is not JSON."""
        return json.loads(self.body) if self.body.strip() else {}

    def params(self) -> dict[str, Any]:
        """Query parameters overlaid with the body (JSON, urlencoded or multipart), as Graph merges them."""
        merged: dict[str, Any] = dict(self.query)
        merged.update(self._body_params())
        return merged

    def _body_params(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        content_type = (self.header("content-type") or "").lower()
        if "multipart/form-data" in content_type:
            return _multipart(self.body, content_type)
        if "application/x-www-form-urlencoded" in content_type:
            return dict(parse_qsl(self.body.decode(), keep_blank_values=True))
        parsed = self.json()
        if not isinstance(parsed, dict):
            raise ValueError("the body must be a JSON object")
        return parsed


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False
    stall_s: float = 0.0

    def json(self) -> Any:
        return self.body


def _multipart(body: bytes, content_type: str) -> dict[str, str]:
    message = BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    for part in message.walk():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields
