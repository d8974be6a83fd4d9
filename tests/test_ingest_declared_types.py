"""``route_typed`` decides every (declared type, value) pair exactly as the contract's one check says
(``contract.values.type_problem``), including the pairs its shortcuts take without asking it."""

from __future__ import annotations

import itertools

from datafactory.contract.sample import Sample
from datafactory.contract.values import INT64_MAX, INT64_MIN, UINT64_MAX, SignalType, Value, type_problem
from ingest.declared_types import Mismatch, route_typed
from ingest.signal_cache import CellEntry

VALUES: list[Value] = [
    0, 1, -1, 2**53, 2**53 + 1, -(2**53) - 1, INT64_MAX, INT64_MAX + 1, UINT64_MAX, INT64_MIN,
    True, False, "", "A-17", "注文-𝄞", "nul\x00inside",
]  # fmt: skip


def test_every_declared_type_and_value_kind_is_routed_as_type_problem_says() -> None:
    entry = CellEntry(1, 1)
    for i, declared in enumerate(SignalType):
        entry.signals[declared.value] = i + 1
        entry.types[declared.value] = declared
    pairs = list(itertools.product(list(SignalType), VALUES))
    typed = [(i, Sample(declared.value, 1000 + i, value, 0)) for i, (declared, value) in enumerate(pairs)]
    float_extra: list[tuple[int, int, float, int]] = []
    rows: list[tuple[int, int, int, SignalType, Value]] = []
    mismatches: list[Mismatch] = []
    unknown: list[tuple[int, Sample]] = []
    route_typed(
        entry, typed=typed, float_extra=float_extra, typed_rows=rows, mismatches=mismatches, unknown=unknown
    )
    assert not unknown
    expect_mismatch = {}
    expect_float, expect_rows = [], []
    for i, (declared, value) in enumerate(pairs):
        sid, t = entry.signals[declared.value], 1000 + i
        if isinstance(value, str) and "\x00" in value:
            expect_mismatch[i] = "string_nul"
        elif type_problem(declared, value) is not None:
            expect_mismatch[i] = "type_mismatch"
        elif declared is SignalType.FLOAT64:
            assert isinstance(value, int)
            expect_float.append((sid, t, float(value), 0))
        else:
            expect_rows.append((sid, t, 0, declared, value))
    assert {m.index: m.reason for m in mismatches} == expect_mismatch
    assert float_extra == expect_float
    assert [(a, b, c, d, type(v), v) for a, b, c, d, v in rows] == [
        (a, b, c, d, type(v), v) for a, b, c, d, v in expect_rows
    ]  # bool stays bool, int stays int
    assert len(expect_rows) > 10 and len(expect_mismatch) > 10 and expect_float  # every branch was taken
