"""Expand a panel's SQL the way Grafana's PostgreSQL data source does, so tests and benchmarks run exactly what
Grafana would send.

Macros (Grafana ``pkg/tsdb/grafana-postgresql-datasource/macros.go``; times are RFC 3339 UTC literals):

    $__time(c)               c AS "time"
    $__timeEpoch(c)          extract(epoch from c) AS "time"
    $__timeFilter(c)         c BETWEEN 'from' AND 'to'
    $__timeFrom() / To()     'from' / 'to'
    $__timeGroup(c, '5m')    floor(extract(epoch from c)/300)*300      ($__timeGroupAlias adds AS "time")
    $__unixEpochFilter(c)    c >= from_epoch AND c <= to_epoch
    $__unixEpochFrom()/To()  from_epoch / to_epoch
    $__interval_ms           the interval in milliseconds;  $__interval  the same as '1m', '5s' …

The interval is Grafana's: range ÷ max data points (the panel's ``maxDataPoints``, else its width in pixels; we
assume 1000), rounded to a "nice" step, but never below the panel's minimum ``interval``.

Template variables (the SQL data sources' ``interpolateVariable``):

    ${v:csv}          values joined by ',' unquoted          ${v:sqlstring}  each value quoted '…' ('' escapes)
    ${v} / $v / [[v]] multi-value or include-All variable: quoted and comma-joined; otherwise the raw value
                      with single quotes doubled
    ${v:queryparam}   var-v=value&var-v=…  (only in links)

"All" with no custom all-value selects every option of the variable, which is what our variables use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_NICE_MS = (10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
            300_000, 600_000, 900_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000,
            43_200_000, 86_400_000, 604_800_000)
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))
MAX_DATA_POINTS = 1000


@dataclass(frozen=True, slots=True)
class VariableValue:
    """The selected values of a variable and whether it is multi-value or has All (that changes quoting)."""

    values: tuple[str, ...]
    multi: bool = False


def parse_duration_ms(text: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", text.strip())
    if not match:
        raise ValueError(f"not a Grafana duration: {text!r}")
    factor = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}[match[2]]
    return int(match[1]) * factor


def format_duration(ms: int) -> str:
    for unit, factor in _UNITS:
        if ms >= factor and ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"


def interval_ms(start: datetime, end: datetime, min_interval: str | None = None,
                max_data_points: int = MAX_DATA_POINTS) -> int:
    raw = (end - start).total_seconds() * 1000 / max_data_points
    nice = next((n for n in _NICE_MS if n >= raw), _NICE_MS[-1])
    return max(nice, parse_duration_ms(min_interval) if min_interval else 0)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def expand_macros(sql: str, start: datetime, end: datetime, step_ms: int) -> str:
    frm, to = _quote(_rfc3339(start)), _quote(_rfc3339(end))
    e_from, e_to = int(start.timestamp()), int(end.timestamp())

    def group(match: re.Match[str], alias: bool) -> str:
        col, step = (part.strip() for part in match[1].split(",")[:2])
        seconds = parse_duration_ms(step.strip("'\"")) // 1000
        body = f"floor(extract(epoch from {col})/{seconds})*{seconds}"
        return body + (' AS "time"' if alias else "")

    rules: list[tuple[str, object]] = [
        (r"\$__timeGroupAlias\(([^)]*)\)", lambda m: group(m, True)),
        (r"\$__timeGroup\(([^)]*)\)", lambda m: group(m, False)),
        (r"\$__timeFilter\(([^)]*)\)", lambda m: f"{m[1].strip()} BETWEEN {frm} AND {to}"),
        (r"\$__timeFrom\(\)", lambda m: frm),
        (r"\$__timeTo\(\)", lambda m: to),
        (r"\$__timeEpoch\(([^)]*)\)", lambda m: f'extract(epoch from {m[1].strip()}) AS "time"'),
        (r"\$__time\(([^)]*)\)", lambda m: f'{m[1].strip()} AS "time"'),
        (r"\$__unixEpochFilter\(([^)]*)\)", lambda m: f"{m[1].strip()} >= {e_from} AND {m[1].strip()} <= {e_to}"),
        (r"\$__unixEpochFrom\(\)", lambda m: str(e_from)),
        (r"\$__unixEpochTo\(\)", lambda m: str(e_to)),
        (r"\$__interval_ms\b", lambda m: str(step_ms)),
        (r"\$__interval\b", lambda m: format_duration(step_ms)),
    ]
    for pattern, repl in rules:
        sql = re.sub(pattern, repl, sql)  # type: ignore[call-overload]
    return sql


def format_variable(value: VariableValue, fmt: str | None) -> str:
    if fmt == "csv":
        return ",".join(value.values)
    if fmt == "sqlstring":
        return ",".join(_quote(v) for v in value.values)
    if fmt is None:
        if value.multi:
            return ",".join(_quote(v) for v in value.values)
        return value.values[0].replace("'", "''") if value.values else ""
    raise ValueError(f"variable format {fmt!r} is not supported in SQL")


def expand_variables(sql: str, variables: dict[str, VariableValue]) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match["braced"] or match["plain"] or match["old"]
        if name.startswith("__") or name not in variables:
            return match[0]  # a macro or a global Grafana variable: not ours
        return format_variable(variables[name], match["fmt"])

    pattern = r"\$\{(?P<braced>\w+)(?::(?P<fmt>\w+))?\}|\$(?P<plain>\w+)|\[\[(?P<old>\w+)\]\]"
    return re.sub(pattern, repl, sql)


def expand(sql: str, variables: dict[str, VariableValue], start: datetime, end: datetime, *,
           min_interval: str | None = None, max_data_points: int | None = None) -> str:
    """Variables first, then macros — Grafana interpolates template variables in the frontend before the
    backend expands macros."""
    step = interval_ms(start, end, min_interval, max_data_points or MAX_DATA_POINTS)
    return expand_macros(expand_variables(sql, variables), start, end, step)


UNEXPANDED = re.compile(r"\$(?:\{\w+|\w+|__\w+)|\[\[\w+\]\]")


def leftover(sql: str) -> list[str]:
    """Variables or macros still in ``sql`` after expansion (a test failure if any)."""
    return UNEXPANDED.findall(sql)
