"""The console's build inputs and output: the OpenAPI document it is typed against, and ``console/dist``.

- :func:`openapi_document` is the API app's own ``/openapi.json`` (the same resolver, default settings),
  as stable, indented JSON; ``python -m local.console_build openapi`` writes it to ``console/openapi.json``
  (``tests/unit/test_console_openapi.py`` fails when the committed copy is stale).
- :func:`dist_is_stale` says whether ``console/dist`` is missing or older than any source file;
  ``python -m local.console_build build`` then runs ``npm ci`` (when ``node_modules`` is missing or older
  than the lockfile) and ``npm run build``. ``make run`` and ``make build`` call it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSOLE_DIR = ROOT / "console"
OPENAPI_PATH = CONSOLE_DIR / "openapi.json"
DIST_DIR = CONSOLE_DIR / "dist"
SOURCE_ENTRIES = ("src", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json")


def openapi_document() -> str:
    """The API's OpenAPI document as the console's generator reads it (sorted keys, trailing newline)."""
    from api.app import get_app
    from replyflow.settings import Settings

    document = json.loads(get_app(Settings()).get_openapi_json_schema())
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _sources(console_dir: Path) -> Iterator[Path]:
    for entry in SOURCE_ENTRIES:
        path = console_dir / entry
        if path.is_dir():
            yield from (p for p in path.rglob("*") if p.is_file())
        elif path.exists():
            yield path


def dist_is_stale(console_dir: Path = CONSOLE_DIR) -> bool:
    index = console_dir / "dist" / "index.html"
    if not index.exists():
        return True
    built = index.stat().st_mtime
    return any(p.stat().st_mtime > built for p in _sources(console_dir))


def _npm(*args: str, console_dir: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("the console needs Node.js 20+ and npm (https://nodejs.org); `make run` builds it")
    subprocess.run([npm, *args], cwd=console_dir, check=True)


def build(console_dir: Path = CONSOLE_DIR, *, force: bool = False) -> bool:
    """npm ci (if needed) and vite build when dist is stale; True when it built."""
    modules = console_dir / "node_modules" / ".package-lock.json"
    lock = console_dir / "package-lock.json"
    if not modules.exists() or modules.stat().st_mtime < lock.stat().st_mtime:
        _npm("ci", "--no-audit", "--no-fund", console_dir=console_dir)
    if not force and not dist_is_stale(console_dir):
        return False
    _npm("run", "build", console_dir=console_dir)
    return True


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "build"
    if command == "openapi":
        OPENAPI_PATH.write_text(openapi_document())
        print(f"wrote {OPENAPI_PATH.relative_to(ROOT)}")
        return 0
    if command == "build":
        print(
            "console: built console/dist" if build(force="--force" in argv) else "console: dist is up to date"
        )
        return 0
    print("usage: python -m local.console_build [openapi|build [--force]]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
