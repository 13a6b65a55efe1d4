"""The console in a real browser (Debian's Chromium via playwright-core; nothing downloads a browser)
against a local stack of its own that serves the built console: sign up, connect an Instagram account
through the OAuth flow, a template with its DM preview, an automation and its dry run, a test comment
sent with the accounts page's button (no terminal) whose decision and counts appear in the logs and
stats pages; axe on every page (no serious or critical violation); a screenshot of every page in
``console/e2e/screenshots/`` (gitignored). The CLI is used once, as the Stripe fake's paying customer.

Needs Node.js 20+ and ``/usr/bin/chromium`` (``apt-get install chromium``); skipped without them,
except under ``CI=true`` where a missing prerequisite fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from local import console_build
from replyflow.settings import Settings
from tests.e2e.conftest import StartStack

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
SCRIPT = console_build.CONSOLE_DIR / "e2e" / "console.e2e.mjs"
SCREENSHOTS = console_build.CONSOLE_DIR / "e2e" / "screenshots"
BROWSER_TIMEOUT = 240


def _missing() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js 20+ and npm are not installed"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def console_dist() -> Path:
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tier cannot run: {missing}")
        pytest.skip(missing)
    console_build.build()  # npm ci when node_modules is stale, vite build when dist is
    return console_build.DIST_DIR


def test_a_tenants_day_in_the_browser(console_dist: Path, start_local_stack: StartStack) -> None:
    stack = start_local_stack(extra_args=["--console", str(console_dist)])
    index = stack.get("/")
    assert index.status_code == 200
    assert '<div id="root">' in index.text
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(
        BASE_URL=stack.api_url,
        SIMULATE=json.dumps([sys.executable, "-m", "local", "simulate"]),
        LOCAL_STATE_DIR=str(stack.workdir / ".local"),
        SCREENSHOT_DIR=str(SCREENSHOTS),
        CHROMIUM_PATH=str(CHROMIUM),
    )
    result = subprocess.run(
        ["node", str(SCRIPT)],
        cwd=stack.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}\n{stack.output()[-3000:]}"
    )
    report = json.loads((SCREENSHOTS / "report.json").read_text())
    assert report["ok"] is True
    pages = set(report["pages"])
    assert {
        "signup",
        "accounts",
        "accounts-test-comment",
        "logs-empty",
        "template-editor",
        "automations",
        "logs",
        "stats",
        "billing",
        "billing-pro",
    } <= pages
    assert all((SCREENSHOTS / f"{page}.png").stat().st_size > 0 for page in pages)


def test_the_consoles_unit_tests_and_type_check(console_dist: Path) -> None:
    """Vitest (happy-dom) and ``tsc`` against the generated client types: an API change that the
    console does not follow fails here."""
    for command in (["npm", "test", "--silent"], ["npm", "run", "typecheck", "--silent"]):
        result = subprocess.run(
            command, cwd=console_build.CONSOLE_DIR, capture_output=True, text=True, timeout=180, check=False
        )
        assert result.returncode == 0, (
            f"{' '.join(command)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
