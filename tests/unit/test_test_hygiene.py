"""No test flushes a Redis it does not own (the in-process fakeredis of ``make_env`` is the one exception)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
FLUSH = re.compile(r"\.(flushdb|flushall)\(", re.IGNORECASE)
ALLOWED = {  # fakeredis only: the unit tier has no sockets, and make_env guards on redis_url None
    ("unit/test_api_support.py", "clients.redis.flushall()  # fakeredis, private to this process"),
    (
        "unit/test_revocation.py",
        "api_env.deps.clients.redis.flushall()  # a restart without persistence: entry and marker gone",
    ),
}


def test_no_test_flushes_a_real_redis() -> None:
    found = {
        (str(path.relative_to(TESTS)), line.strip())
        for path in TESTS.rglob("*.py")
        if path.name != Path(__file__).name
        for line in path.read_text().splitlines()
        if FLUSH.search(line)
    }
    assert found <= ALLOWED


def test_no_test_reaches_for_the_machines_redis_port() -> None:
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if path.name != Path(__file__).name and re.search(r"(127\.0\.0\.1|localhost):6379", path.read_text())
    ]
    assert offenders == []
