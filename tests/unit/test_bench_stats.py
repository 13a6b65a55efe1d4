"""The benchmark table: percentile columns, per-row details, and fields common to every row once."""

from __future__ import annotations

import io

from bench.stats import print_table


def test_common_fields_are_said_once_and_the_rest_per_row() -> None:
    rows = [
        {"name": "a", "n": 3, "p50_ms": 1.2, "bare": 1, "x": 2},
        {"name": "bb", "n": 4, "p50_ms": 1.5, "bare": 1, "x": 3, "only": True},
    ]
    out = io.StringIO()

    print_table(rows, out)

    assert out.getvalue().splitlines() == [
        "name  n  p50_ms  p95_ms  p99_ms  max_ms  per_second  details",
        "a     3  1.20    -       -       -       -           x=2",
        "bb    4  1.50    -       -       -       -           x=3; only=True",
        "  bare: 1",
    ]


def test_one_row_keeps_every_field_in_its_details() -> None:
    out = io.StringIO()

    print_table([{"name": "a", "n": 1, "p50_ms": 1.0, "bare": 1, "x": {"k": 1.5}}], out)

    assert out.getvalue().splitlines()[1].endswith("bare=1; x={k: 1.50}")


def test_no_rows() -> None:
    out = io.StringIO()

    print_table([], out)

    assert out.getvalue() == "  (no rows)\n"
