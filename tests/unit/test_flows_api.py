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
