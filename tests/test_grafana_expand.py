"""Grafana's macro and variable expansion rules as ``grafana.expand`` implements them (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grafana.expand import VariableValue, expand, format_duration, interval_ms, leftover, parse_duration_ms

START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
END = START + timedelta(days=1)


def test_time_macros() -> None:
    sql = "WHERE $__timeFilter(s.time) AND t < $__timeTo() AND t > $__timeFrom() AND $__unixEpochFilter(e)"
    out = expand(sql, {}, START, END)
    assert out == ("WHERE s.time BETWEEN '2026-03-01T00:00:00Z' AND '2026-03-02T00:00:00Z' AND t < "
                   "'2026-03-02T00:00:00Z' AND t > '2026-03-01T00:00:00Z' AND e >= 1772323200 AND e <= 1772409600")
    grouped = expand("$__timeGroupAlias(time, '5m')", {}, START, END)
    assert grouped == 'floor(extract(epoch from time)/300)*300 AS "time"'
    assert expand("$__time(t)", {}, START, END) == 't AS "time"'


def test_interval_is_range_over_points_rounded_and_at_least_the_minimum() -> None:
    assert interval_ms(START, END) == 120_000  # 86.4 s per point → the next nice step, 2 min
    assert interval_ms(START, START + timedelta(hours=1)) == 5_000
    assert interval_ms(START, START + timedelta(hours=1), "1m") == 60_000
    assert interval_ms(START, START + timedelta(days=30), max_data_points=400) == 7_200_000
    assert expand("$__interval_ms|$__interval", {}, START, END) == "120000|2m"
    assert format_duration(3_600_000) == "1h" and parse_duration_ms("15s") == 15_000
    with pytest.raises(ValueError):
        parse_duration_ms("5 minutes")


def test_variable_formats() -> None:
    variables = {
        "plant": VariableValue(("3",)),
        "machine": VariableValue(("1", "2"), multi=True),
        "line": VariableValue(("a/line-1", "o'brien"), multi=True),
        "name": VariableValue(("it's",)),
    }
    sql = "${plant} ${machine:csv} ${line:sqlstring} $line [[plant]] ${name} $__timeFrom()"
    out = expand(sql, variables, START, END)
    assert out == "3 1,2 'a/line-1','o''brien' 'a/line-1','o''brien' 3 it''s '2026-03-01T00:00:00Z'"
    assert not leftover(out)
    assert leftover("${unknown}") == ["${unknown"]
