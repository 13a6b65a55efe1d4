"""The sandbox keeps its world in a SQLite file: a new sandbox on the same file (a restart, or the
process after a ``kill -9``) knows the tokens, comments, windows and every send it answered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from local.queue_store import StateLockedError
from local.sandbox import SandboxServer, errors
from local.sandbox.store import SandboxStore
from tests.unit.test_sandbox import ACCOUNT, APP_ID, APP_SECRET, USER, FakeClock, call, send


def sandbox(path: Path, clock: FakeClock) -> SandboxServer:
    return SandboxServer(port=0, app_id=APP_ID, app_secret=APP_SECRET, clock=clock, seed=7, state_path=path)


def crash(server: SandboxServer) -> None:
    """Drop the sandbox as a killed process would: the file keeps what each request committed."""
    store = server.app.store
    assert store is not None
    store._db.close()
    store._lock_file.close()


def messages(server: SandboxServer) -> dict[str, Any]:
    body = call(server, "GET", "/_sandbox/messages").body
    assert isinstance(body, dict)
    return body


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_restarted_sandbox_knows_tokens_comments_windows_and_sends(tmp_path, clock):
    path = tmp_path / "sandbox.sqlite3"
    first = sandbox(path, clock)
    token = first.issue_token(ACCOUNT, "demo_shop")
    comment = {"id": "17900000000000001", "from_id": USER, "username": "ana", "text": "LINK"}
    assert call(first, "POST", "/_sandbox/comments", body=comment).status == 200
    assert send(first, token, {"comment_id": comment["id"]}).status == 200
    assert (
        call(first, "POST", "/_sandbox/inbound", body={"account_id": ACCOUNT, "sender_id": USER}).status
        == 200
    )
    assert send(first, token, {"id": USER}).status == 200
    assert send(first, token, {"id": "1111"}).status == 400  # no window: a rejection, recorded too
    assert call(first, "POST", f"/_sandbox/users/{USER}/unavailable").status == 200
    before = messages(first)
    crash(first)

    second = sandbox(path, clock)
    assert messages(second) == before
    assert [m["kind"] for m in before["messages"]] == ["private_reply", "dm"]
    assert len(before["rejected"]) == 1
    # The token still works, the one-private-reply rule still holds, the user is still unavailable.
    again = send(second, token, {"comment_id": comment["id"]})
    assert again.status == 400
    assert again.body["error"]["error_subcode"] == errors.SUBCODE_ALREADY_REPLIED
    assert send(second, token, {"id": USER}).body["error"]["code"] == 551
    node = call(second, "GET", f"/v23.0/{comment['id']}", params={"fields": "text,username"}, token=token)
    assert node.body == {"id": comment["id"], "text": "LINK", "username": "ana"}
    # Ids keep counting: a new message id never repeats one from before the restart.
    assert call(second, "DELETE", f"/_sandbox/users/{USER}/unavailable").status == 200
    third = send(second, token, {"id": USER})
    assert third.status == 200
    ids = [m["message_id"] for m in messages(second)["messages"]]
    assert len(ids) == len(set(ids)) == 3
    second.stop()


def test_clearing_and_resetting_are_kept_too(tmp_path, clock):
    path = tmp_path / "sandbox.sqlite3"
    first = sandbox(path, clock)
    token = first.issue_token(ACCOUNT, "demo_shop")
    for index in range(5):
        assert send(first, token, {"comment_id": f"1790000000000010{index}"}).status == 200
    assert call(first, "DELETE", "/_sandbox/messages").status == 200
    assert send(first, token, {"comment_id": "17900000000000200"}).status == 200
    crash(first)

    second = sandbox(path, clock)
    assert [m["recipient"] for m in messages(second)["messages"]] == [{"comment_id": "17900000000000200"}]
    assert call(second, "DELETE", "/_sandbox/state", params={"identities": "true"}).status == 200
    second.stop()

    third = sandbox(path, clock)
    assert messages(third) == {"messages": [], "rejected": []}
    assert send(third, token, {"comment_id": "17900000000000300"}).status == 400  # the token is gone
    third.stop()


def test_one_sandbox_per_state_file(tmp_path, clock):
    path = tmp_path / "sandbox.sqlite3"
    first = sandbox(path, clock)
    with pytest.raises(StateLockedError):
        SandboxStore(path)
    first.stop()
    sandbox(path, clock).stop()  # released on stop


def test_a_field_changed_in_place_is_written_too(tmp_path, clock):
    """What a handler that edits an entry (hiding a comment, a used auth code) relies on."""
    path = tmp_path / "sandbox.sqlite3"
    first = sandbox(path, clock)
    comment = {"id": "17900000000000400", "from_id": USER, "text": "hello"}
    assert call(first, "POST", "/_sandbox/comments", body=comment).status == 200
    with first.app.state.lock:
        first.app.state.comments[comment["id"]].hidden = True
        first.app.persist()
    crash(first)
    second = sandbox(path, clock)
    assert second.app.state.comments[comment["id"]].hidden is True
    second.stop()


def test_media_survive_a_restart_with_their_comments(tmp_path, clock):
    path = tmp_path / "sandbox.sqlite3"
    first = sandbox(path, clock)
    token = first.issue_token(ACCOUNT, "demo_shop")
    medium = call(first, "POST", "/_sandbox/media", body={"id": "18000000000000077", "account_id": ACCOUNT})
    assert medium.status == 200, medium.body
    comment = {"id": "17900000000000077", "from_id": USER, "text": "LINK", "media_id": "18000000000000077"}
    assert call(first, "POST", "/_sandbox/comments", body={**comment, "account_id": ACCOUNT}).status == 200
    before = call(first, "GET", f"/v23.0/{ACCOUNT}/media", params={"fields": "id"}, token=token).body
    crash(first)

    second = sandbox(path, clock)
    after = call(second, "GET", f"/v23.0/{ACCOUNT}/media", params={"fields": "id"}, token=token).body
    assert after == before
    assert isinstance(after, dict)
    assert [m["id"] for m in after["data"]] == ["18000000000000077"]
    second.stop()


def test_followers_survive_a_restart(tmp_path, clock):
    path = tmp_path / "sandbox.db"
    first = sandbox(path, clock)
    follows = {"account_id": ACCOUNT, "follows": True}
    assert call(first, "POST", f"/_sandbox/users/{USER}/follows", body=follows).status == 200
    crash(first)
    second = sandbox(path, clock)
    assert second.app.state.followers == {(ACCOUNT, USER)}
