"""Usage plans per plan tier: each tier's plan has a key, and the authorizer knows every key."""

from __future__ import annotations

from typing import Any

from replyflow.domain.plans import PLANS
from tests.infra.conftest import ref_target, resources_of


def test_every_plan_tier_has_a_usage_plan_with_a_key(template: dict[str, Any]) -> None:
    plans = resources_of(template, "AWS::ApiGateway::UsagePlan")
    keyed = {
        ref_target(k["Properties"]["UsagePlanId"])
        for k in resources_of(template, "AWS::ApiGateway::UsagePlanKey").values()
    }
    assert {f"{p['code'].title()}UsagePlan" for p in PLANS} <= set(plans)
    assert set(plans) <= keyed


def test_the_authorizer_is_given_every_tiers_key(functions: dict[str, dict[str, Any]]) -> None:
    variables = functions["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    keys = str(variables["USAGE_PLAN_KEYS"])
    for plan in PLANS:
        assert f'"{plan["code"]}":' in keys
