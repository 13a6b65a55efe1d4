"""Shape rules of a Send API body that Instagram enforces with code 100 (docs/instagram.md#send-api).

Limits Meta only truncates (quick-reply titles over 20 characters, template titles over 80) are not
errors here either.
"""

from __future__ import annotations

import json
from typing import Any

from local.sandbox import errors

# docs/instagram.md#send-api.
MAX_TEXT_BYTES = 1000
MAX_QUICK_REPLIES = 13
MAX_BUTTONS = 3
MAX_GENERIC_ELEMENTS = 10
MAX_ATTACHMENTS = 10
QUICK_REPLY_TYPES = ("text", "user_phone_number", "user_email")


def parse_send_body(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(recipient, message)`` from a JSON or form body (form values are JSON strings)."""
    recipient = _object_param(params, "recipient")
    message = _object_param(params, "message")
    ids = [key for key in ("id", "comment_id") if recipient.get(key)]
    if len(ids) != 1:
        raise errors.invalid_param("param recipient must contain exactly one of id or comment_id")
    recipient = {ids[0]: str(recipient[ids[0]])}
    validate_message(message)
    return recipient, message


def _object_param(params: dict[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise errors.invalid_param(f"param {name} must be a JSON object") from None
    if not value:
        raise errors.invalid_param(f"The parameter {name} is required")
    if not isinstance(value, dict):
        raise errors.invalid_param(f"param {name} must be a JSON object")
    return value


def validate_message(message: dict[str, Any]) -> None:
    text = message.get("text")
    if not text and not message.get("attachment") and not message.get("attachments"):
        raise errors.invalid_param("Message cannot be empty, must provide valid attachment or text")
    if text is not None:
        _check_text(text)
    _check_quick_replies(message.get("quick_replies"))
    if message.get("attachment") is not None:
        _check_attachment(message["attachment"])
    attachments = message.get("attachments")
    if attachments is not None and (not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS):
        raise errors.invalid_param(f"param message[attachments] must be a list of at most {MAX_ATTACHMENTS}")


def _check_text(text: Any) -> None:
    if not isinstance(text, str):
        raise errors.invalid_param("param message[text] must be a string")
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise errors.invalid_param(
            f"Length of param message[text] must be less than or equal to {MAX_TEXT_BYTES}"
        )


def _check_quick_replies(quick_replies: Any) -> None:
    if quick_replies is None:
        return
    if not isinstance(quick_replies, list) or not quick_replies:
        raise errors.invalid_param("param message[quick_replies] must be a non-empty array")
    if len(quick_replies) > MAX_QUICK_REPLIES:
        raise errors.invalid_param(
            f"param message[quick_replies] must have at most {MAX_QUICK_REPLIES} items"
        )
    for item in quick_replies:
        if not isinstance(item, dict) or item.get("content_type") not in QUICK_REPLY_TYPES:
            raise errors.invalid_param("param message[quick_replies][content_type] is invalid")
        if item["content_type"] == "text" and not (item.get("title") and item.get("payload")):
            raise errors.invalid_param("param message[quick_replies] text items need a title and a payload")


def _check_attachment(attachment: Any) -> None:
    if not isinstance(attachment, dict) or not attachment.get("type"):
        raise errors.invalid_param("param message[attachment][type] is required")
    payload = attachment.get("payload")
    if attachment["type"] != "template":
        return
    if not isinstance(payload, dict):
        raise errors.invalid_param("param message[attachment][payload] is required")
    if payload.get("template_type") == "button":
        _check_buttons(payload.get("buttons"), "message[attachment][payload][buttons]", required=True)
        if not payload.get("text"):
            raise errors.invalid_param("param message[attachment][payload][text] is required")
    elif payload.get("template_type") == "generic":
        _check_elements(payload.get("elements"))


def _check_elements(elements: Any) -> None:
    if not isinstance(elements, list) or not elements:
        raise errors.invalid_param("param message[attachment][payload][elements] is required")
    if len(elements) > MAX_GENERIC_ELEMENTS:
        raise errors.invalid_param(
            f"param message[attachment][payload][elements] must have at most {MAX_GENERIC_ELEMENTS} items"
        )
    for element in elements:
        if not isinstance(element, dict) or not element.get("title"):
            raise errors.invalid_param("param message[attachment][payload][elements][title] is required")
        _check_buttons(
            element.get("buttons"), "message[attachment][payload][elements][buttons]", required=False
        )


def _check_buttons(buttons: Any, name: str, *, required: bool) -> None:
    if buttons is None and not required:
        return
    if not isinstance(buttons, list) or not buttons:
        raise errors.invalid_param(f"param {name} must be a non-empty array")
    if len(buttons) > MAX_BUTTONS:
        raise errors.invalid_param(f"param {name} must have at most {MAX_BUTTONS} items")
