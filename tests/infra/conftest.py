"""Templates as data for the infra tier: no AWS, no network, no SAM transform.

CloudFormation short-form tags are loaded into their long JSON form (``!Ref X`` -> ``{"Ref": "X"}``,
``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``), so the tests read both spellings the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
INFRA_DIR = ROOT / "infra"
NESTED = ("network", "database", "cache", "storage", "observability", "console")


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic tags."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CfnLoader)


def resources_of(doc: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in (doc.get("Resources") or {}).items()
        if resource.get("Type") == resource_type
    }


def walk(value: Any) -> Iterator[Any]:
    """Every node of a loaded template, depth first."""
    yield value
    if isinstance(value, Mapping):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def ref_target(value: Any) -> str | None:
    """The logical id behind ``!Ref X`` or ``!GetAtt X.Attr``."""
    if isinstance(value, Mapping):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="session")
def nested() -> dict[str, dict[str, Any]]:
    return {name: load_template(INFRA_DIR / f"{name}.yaml") for name in NESTED}


@pytest.fixture(scope="session")
def all_templates(template: dict[str, Any], nested: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {"template.yaml": template, **{f"infra/{name}.yaml": doc for name, doc in nested.items()}}


@pytest.fixture(scope="session")
def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(template, "AWS::Serverless::Function")


@pytest.fixture(scope="session")
def queues(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(template, "AWS::SQS::Queue")
