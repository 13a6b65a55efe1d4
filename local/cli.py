"""The ``replyflow`` command line (placeholder until the local stack lands)."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("not yet")
