"""Instagram webhook bodies, built the way Meta sends them (the shapes of ``events/instagram/``): a
comment (``comments`` / ``live_comments``), a text DM, a button tap (postback) and a quick reply.

One module for every caller that makes an event rather than receiving one: the CLI's ``replyflow
simulate``, the API's test comment on a sandbox stack (``services.sandbox_tools``) and the tests.
Comment bodies carry ``entry[].time`` in seconds, messaging bodies in milliseconds, as Meta's do.
Pure: no I/O, and the clock only when the caller passes no ``now``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

DEFAULT_FROM_ID = "7351928465012834"
DEFAULT_USERNAME = "maya.creates"
DEFAULT_MEDIA_ID = "18034567890123456"
DEFAULT_DM_FROM_ID = "1129384756102938"


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def new_comment_id() -> str:
    """A fresh id shaped like Instagram's comment ids (17 digits)."""
    return f"179{_digits(14)}"


def new_mid() -> str:
    """A fresh message id shaped like Instagram's."""
    return f"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlE{_digits(24)}"


def comment_body(
    *,
    text: str,
    account: str,
    comment_id: str,
    from_id: str = DEFAULT_FROM_ID,
    username: str = DEFAULT_USERNAME,
    media_id: str = DEFAULT_MEDIA_ID,
    parent_id: str | None = None,
    live: bool = False,
    now: float | None = None,
) -> dict[str, Any]:
    """A ``comments`` (or ``live_comments``) webhook body like events/instagram/comment_feed.json."""
    value: dict[str, Any] = {
        "from": {"id": from_id, "username": username},
        "media": {"id": media_id, "media_product_type": "LIVE" if live else "FEED"},
        "id": comment_id,
    }
    if parent_id:
        value["parent_id"] = parent_id
    value["text"] = text
    return {
        "object": "instagram",
        "entry": [
            {
                "id": account,
                "time": int(now if now is not None else time.time()),
                "changes": [{"field": "live_comments" if live else "comments", "value": value}],
            }
        ],
    }


def dm_body(
    *,
    text: str,
    account: str,
    from_id: str = DEFAULT_DM_FROM_ID,
    mid: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """A ``messaging`` webhook body like events/instagram/dm_text.json (milliseconds)."""
    body = _messaging(account, from_id, now)
    body["entry"][0]["messaging"][0]["message"] = {"mid": mid or new_mid(), "text": text}
    return body


def postback_body(
    *,
    payload: str,
    account: str,
    title: str = "Tap",
    from_id: str = DEFAULT_FROM_ID,
    mid: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """A button tap like events/instagram/dm_postback.json (milliseconds)."""
    body = _messaging(account, from_id, now)
    item = body["entry"][0]["messaging"][0]
    item["postback"] = {"mid": mid or new_mid(), "title": title, "payload": payload}
    return body


def quick_reply_body(
    *,
    payload: str,
    account: str,
    text: str | None = None,
    from_id: str = DEFAULT_FROM_ID,
    mid: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """A quick-reply tap like events/instagram/dm_quick_reply.json; an email or phone quick reply
    carries the address as both its text and its payload."""
    body = _messaging(account, from_id, now)
    item = body["entry"][0]["messaging"][0]
    item["message"] = {"mid": mid or new_mid(), "text": text or payload, "quick_reply": {"payload": payload}}
    return body


def _messaging(account: str, from_id: str, now: float | None) -> dict[str, Any]:
    millis = int((now if now is not None else time.time()) * 1000)
    item = {"sender": {"id": from_id}, "recipient": {"id": account}, "timestamp": millis}
    return {"object": "instagram", "entry": [{"id": account, "time": millis, "messaging": [item]}]}
