"""cfn-lint passes on every template (the same command `make validate` runs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.infra.conftest import INFRA_DIR, TEMPLATE


def _cfn_lint() -> str:
    beside_python = Path(sys.executable).with_name("cfn-lint")
    found = str(beside_python) if beside_python.exists() else shutil.which("cfn-lint")
    assert found, "cfn-lint is not installed (requirements-dev.txt)"
    return found


def test_cfn_lint_is_clean_on_every_template() -> None:
    templates = [str(TEMPLATE), *sorted(str(p) for p in INFRA_DIR.glob("*.yaml"))]
    result = subprocess.run(
        [_cfn_lint(), *templates], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
