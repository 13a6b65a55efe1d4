"""/v1/flows through the in-process gateway (SQLite): validation errors that name the step and the
rule, versions and activation, the follow gate in one call, the simulator and the step analytics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from replyflow.domain.flows import FOLLOW_GATE_FOLLOWED, FOLLOW_GATE_TAP, follow_gate_graph
from tests.unit.test_api_resources import connect
from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


@pytest.fixture
def owner(api_env: ApiEnv) -> tuple[str, dict[str, Any]]:
    token = api_env.signup()["access_token"]
    return token, connect(api_env, token)


def test_a_graph_that_breaks_a_rule_is_422_naming_the_step(
    api_env: ApiEnv, owner: tuple[str, dict[str, Any]]
) -> None:
    token, account = owner
    graph = {
        "start": "a",
        "steps": [
            {"id": "a", "kind": "send", "message": {"text": "one"}, "next": "b"},
            {"id": "b", "kind": "send", "message": {"text": "two"}},
        ],
    }
    body = {"account_id": account["id"], "name": "bad", "graph": graph}
    response = api_env.call("POST", "/v1/flows", token=token, body=body)
    assert response.status == 422
    assert response.body["error"]["code"] == "flow_invalid"
    assert response.body["error"]["details"] == [
        {
            "step_id": "b",
            "rule": "one_private_reply",
            "message": "a comment allows one private reply: wait for the person before sending again",
        }
    ]


def test_versions_activation_and_the_follow_gate(api_env: ApiEnv, owner: tuple[str, dict[str, Any]]) -> None:
    token, account = owner
    gate = api_env.call(
        "POST",
        "/v1/flows/follow-gate",
        token=token,
        body={
            "account_id": account["id"],
            "keyword": "LINK",
            "message": "The guide",
            "link": "https://x.example/g",
        },
    )
    assert gate.status == 201
    flow_id = gate.body["flow"]["id"]
    automation = api_env.call("GET", f"/v1/automations/{gate.body['automation_id']}", token=token).body
    assert automation["actions"] == {"start_flow": {"flow_id": flow_id}}
    assert automation["keywords"] == ["LINK"]

    v2 = api_env.call(
        "POST",
        f"/v1/flows/{flow_id}/versions",
        token=token,
        body={"graph": follow_gate_graph("New", "https://x.example/2")},
    )
    assert (v2.status, v2.body["version"]) == (201, 2)
    flow = api_env.call("GET", f"/v1/flows/{flow_id}", token=token).body
    assert (flow["latest_version"], flow["active_version"]) == (2, 1)
    activated = api_env.call("POST", f"/v1/flows/{flow_id}/activate", token=token, body={"version": 2})
    assert activated.body["active_version"] == 2
    missing = api_env.call("POST", f"/v1/flows/{flow_id}/activate", token=token, body={"version": 9})
    assert missing.status == 422
    assert [v["version"] for v in api_env.call("GET", f"/v1/flows/{flow_id}/versions", token=token).body] == [
        1,
        2,
    ]
    assert api_env.call("GET", f"/v1/flows/{flow_id}/stats", token=token).body["totals"] == {}


def test_the_simulator_plays_the_follow_gate(api_env: ApiEnv, owner: tuple[str, dict[str, Any]]) -> None:
    token, _account = owner
    events = [
        {"kind": "comment", "text": "LINK"},
        {"kind": "message", "text": "hi"},
        {"kind": "postback", "payload": FOLLOW_GATE_TAP},
        {"kind": "follows", "follows": True},
        {"kind": "postback", "payload": FOLLOW_GATE_FOLLOWED},
    ]
    body = {
        "graph": follow_gate_graph("The guide", "https://x.example/g"),
        "events": events,
        "follows": False,
    }
    response = api_env.call("POST", "/v1/flows/simulate", token=token, body=body)
    assert response.status == 200, response.body
    transcript = response.body["transcript"]
    assert [step["handled"] for step in transcript] == [True, False, True, True]
    assert [s["kind"] for s in transcript[0]["sends"]] == ["private_reply"]
    assert "Follow us first" in str(transcript[2]["sends"])
    branch = [d for d in transcript[2]["decisions"] if d["outcome"] == "branched"]
    assert branch == [{"step_id": "check", "outcome": "branched", "reason": "else: does not follow"}]
    assert "https://x.example/g" in str(transcript[3]["sends"])
    assert (response.body["status"], response.body["end_reason"]) == ("completed", "completed")


def test_the_simulator_fires_a_delay_once_and_refuses_sending_past_the_window(
    api_env: ApiEnv, owner: tuple[str, dict[str, Any]]
) -> None:
    token, _ = owner
    delay: dict[str, Any] = {"id": "d", "kind": "delay", "minutes": 1, "next": "s"}
    graph = {
        "entry": "message",
        "start": "d",
        "steps": [delay, {"id": "s", "kind": "send", "message": {"text": "a minute later"}}],
    }
    events = [
        {"kind": "message", "text": "hi"},
        {"kind": "wait", "minutes": 5},
        {"kind": "wait", "minutes": 5},
    ]
    body = {"graph": graph, "events": events}
    transcript = api_env.call("POST", "/v1/flows/simulate", token=token, body=body).body["transcript"]
    sends = [s for step in transcript for s in step["sends"]]
    assert sends == [{"step_id": "s", "kind": "dm", "message": {"text": "a minute later"}}]
    delay["minutes"] = 24 * 60
    refused = api_env.call("POST", "/v1/flows/simulate", token=token, body={"graph": graph, "events": events})
    assert refused.status == 422
    assert refused.body["error"]["details"][0]["rule"] == "within_24h_window"


def _follow_gate(api_env: ApiEnv, token: str, account_id: str) -> dict[str, Any]:
    body = {
        "account_id": account_id,
        "keyword": "LINK",
        "message": "The guide",
        "link": "https://x.example/g",
    }
    created = api_env.call("POST", "/v1/flows/follow-gate", token=token, body=body)
    assert created.status == 201
    return dict(created.body)


def _message_flow(api_env: ApiEnv, token: str, account_id: str) -> str:
    graph = {
        "entry": "message",
        "start": "s",
        "steps": [{"id": "s", "kind": "send", "message": {"text": "hi"}}],
    }
    body = {"account_id": account_id, "name": "dm flow", "graph": graph}
    created = api_env.call("POST", "/v1/flows", token=token, body=body)
    assert created.status == 201
    return str(created.body["id"])


def test_a_trigger_that_does_not_fit_the_flows_entry_is_422_naming_the_field(
    api_env: ApiEnv, owner: tuple[str, dict[str, Any]]
) -> None:
    token, account = owner
    gate = _follow_gate(api_env, token, account["id"])
    comment_flow = gate["flow"]["id"]
    message_flow = _message_flow(api_env, token, account["id"])

    def automation(trigger: str, flow_id: str) -> Any:
        body = {
            "account_id": account["id"],
            "name": f"{trigger} {flow_id}",
            "trigger": trigger,
            "keywords": ["GO"],
            "actions": {"start_flow": {"flow_id": flow_id}},
        }
        return api_env.call("POST", "/v1/automations", token=token, body=body)

    refused = automation("story_reply", comment_flow)
    assert refused.status == 422
    error = refused.body["error"]
    assert error["code"] == "flow_entry_mismatch"
    assert error["details"][0]["loc"] == ["body", "actions", "start_flow", "flow_id"]
    assert (error["details"][0]["trigger"], error["details"][0]["entry"]) == ("story_reply", "comment")
    assert automation("comment", message_flow).body["error"]["code"] == "flow_entry_mismatch"
    assert automation("dm_keyword", message_flow).status == 201
    assert automation("live_comment", comment_flow).status == 201

    # A comment automation starts the follow gate: a message-entry version of it is not activated.
    dm_graph = {
        "entry": "message",
        "start": "s",
        "steps": [{"id": "s", "kind": "send", "message": {"text": "x"}}],
    }
    v2 = api_env.call("POST", f"/v1/flows/{comment_flow}/versions", token=token, body={"graph": dm_graph})
    activate = api_env.call(
        "POST", f"/v1/flows/{comment_flow}/activate", token=token, body={"version": v2.body["version"]}
    )
    assert activate.status == 422
    assert activate.body["error"]["code"] == "flow_entry_mismatch"
    assert activate.body["error"]["details"][0]["loc"] == ["body", "version"]
    flow = api_env.call("GET", f"/v1/flows/{comment_flow}", token=token).body
    assert flow["active_version"] == 1


def test_the_dry_run_of_a_start_flow_automation_shows_the_flow_starting(
    api_env: ApiEnv, owner: tuple[str, dict[str, Any]]
) -> None:
    token, account = owner
    gate = _follow_gate(api_env, token, account["id"])
    flow_id, automation_id = gate["flow"]["id"], gate["automation_id"]
    test = f"/v1/automations/{automation_id}/test"
    dry = api_env.call("POST", test, token=token, body={"kind": "comment", "text": "LINK please"})
    assert dry.status == 200, dry.body
    assert (dry.body["would_run"], dry.body["reason"], dry.body["actions"]) == (True, None, [])
    flow = dry.body["flow"]
    assert (flow["flow_id"], flow["version"], flow["first_step"], flow["would_start"]) == (
        flow_id,
        1,
        "offer",
        True,
    )
    assert [(s["step_id"], s["kind"]) for s in flow["sends"]] == [("offer", "private_reply")]
    assert flow["sends"][0]["message"]["attachment"]["payload"]["buttons"][0]["payload"] == FOLLOW_GATE_TAP
    assert flow["status"] == "waiting"
    assert "offer" in dry.body["explanation"]

    api_env.call("POST", f"/v1/flows/{flow_id}/activate", token=token, body={"version": None})
    inactive = api_env.call("POST", test, token=token, body={"kind": "comment", "text": "LINK"}).body
    assert (inactive["would_run"], inactive["reason"], inactive["flow"]["reason"]) == (
        False,
        "flow_inactive",
        "flow_inactive",
    )
