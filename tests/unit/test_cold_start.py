"""What a new instance imports before its first event (docs/scaling.md#cold-starts): outside Lambda
the tracer is off, so the X-Ray SDK (which pulls in botocore) is never imported; the sender imports
httpx only when it makes its first Graph call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported(code: str, prefixes: tuple[str, ...]) -> list[str]:
    names = f"sorted(m for m in sys.modules if m.startswith({prefixes!r}))"
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps({names}))"
    env_path = f"{ROOT / 'layers' / 'shared'}:{ROOT / 'functions'}:{ROOT}"
    result = subprocess.run(
        [sys.executable, "-c", probe], env={"PYTHONPATH": env_path}, capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["webhook.handler", "sender.handler", "processor.handler", "api.handler"])
def test_no_xray_sdk_when_tracing_is_off(module: str) -> None:
    assert _imported(f"import {module}", ("aws_xray_sdk.core", "botocore.client")) == []


def test_the_sender_imports_httpx_at_its_first_graph_call() -> None:
    assert _imported("import sender.handler", ("httpx",)) == []
    code = "from replyflow.adapters.graph_client import GraphClient\nGraphClient('https://graph.example')"
    assert "httpx" in _imported(code, ("httpx",))


def test_the_disabled_tracer_still_wraps_a_handler() -> None:
    from replyflow.observability import tracer

    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, int], _context: object) -> dict[str, int]:
        return {"n": event["n"] + 1}

    assert tracer.disabled
    assert handler({"n": 1}, None) == {"n": 2}
