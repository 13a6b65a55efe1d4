"""Message templates: validation against Instagram's limits and rendering into a Send API ``message``.

Limits (docs/instagram.md#send-api): text <= 1000 bytes of UTF-8 (bytes, not characters), <= 3 buttons,
<= 13 quick replies, titles <= 20 characters. Variables are ``{{name}}``; unknown variables are refused
at validation time and render as empty strings if they ever reach rendering. Rendered text is cut on
a byte budget at a character boundary, so a long username can never push a message over the limit.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

MAX_TEXT_BYTES = 1000
MAX_BUTTONS = 3
MAX_QUICK_REPLIES = 13
MAX_TITLE_CHARS = 20
MAX_PAYLOAD_CHARS = 1000

VARIABLES: dict[str, str] = {
    "username": "the contact's Instagram username",
    "comment_text": "the text of the comment or message that triggered the automation",
    "keyword": "the keyword that matched",
    "media_id": "the id of the post that was commented on",
    "account_username": "your account's username",
}
_VARIABLE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


class Button(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["web_url", "postback"]
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    url: HttpUrl | None = None
    payload: str | None = Field(default=None, max_length=MAX_PAYLOAD_CHARS)

    @model_validator(mode="after")
    def _target(self) -> Button:
        if self.type == "web_url" and self.url is None:
            raise ValueError("a web_url button needs a url")
        if self.type == "postback" and not self.payload:
            raise ValueError("a postback button needs a payload")
        return self


class QuickReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_type: Literal["text", "user_phone_number", "user_email"] = "text"
    title: str | None = Field(default=None, max_length=MAX_TITLE_CHARS)
    payload: str | None = Field(default=None, max_length=MAX_PAYLOAD_CHARS)

    @model_validator(mode="after")
    def _text_needs_title(self) -> QuickReply:
        if self.content_type == "text" and not (self.title and self.payload):
            raise ValueError("a text quick reply needs a title and a payload")
        return self


class TemplateContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    buttons: list[Button] = Field(default_factory=list, max_length=MAX_BUTTONS)
    quick_replies: list[QuickReply] = Field(default_factory=list, max_length=MAX_QUICK_REPLIES)

    @field_validator("text")
    @classmethod
    def _text_limits(cls, text: str) -> str:
        size = len(text.encode())
        if size > MAX_TEXT_BYTES:
            raise ValueError(f"text is {size} bytes of UTF-8; Instagram allows at most {MAX_TEXT_BYTES}")
        unknown = sorted(set(variables_in(text)) - VARIABLES.keys())
        if unknown:
            raise ValueError(f"unknown variables {unknown}; known: {sorted(VARIABLES)}")
        return text


def variables_in(text: str) -> list[str]:
    return _VARIABLE.findall(text)


def truncate_bytes(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode(errors="ignore")


def render_text(text: str, variables: dict[str, str]) -> str:
    rendered = _VARIABLE.sub(lambda m: variables.get(m.group(1), ""), text)
    return truncate_bytes(rendered)


def build_message(content: TemplateContent, variables: dict[str, str]) -> dict[str, Any]:
    """The Send API ``message`` object: plain text, or a button template, plus quick replies."""
    text = render_text(content.text, variables)
    message: dict[str, Any]
    if content.buttons:
        buttons = [
            {"type": b.type, "title": b.title, "url": str(b.url)}
            if b.type == "web_url"
            else {"type": b.type, "title": b.title, "payload": b.payload}
            for b in content.buttons
        ]
        message = {
            "attachment": {
                "type": "template",
                "payload": {"template_type": "button", "text": text, "buttons": buttons},
            }
        }
    else:
        message = {"text": text}
    if content.quick_replies:
        message["quick_replies"] = [qr.model_dump(exclude_none=True) for qr in content.quick_replies]
    return message
