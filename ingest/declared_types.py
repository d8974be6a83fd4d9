"""Routing a message's samples by their signals' declared types: float64 lane, typed lane, or a dead letter.

A signal's declared type (``signals.signal_type``: from the gateway's meta, a deployed config, or — for a signal
seen in data before any meta — the type its first value implies) decides where its samples go. float64 signals
take float values and integers within ±2^53 (``contract.values.type_problem``) into ``samples``; int64, uint64,
bool and string signals take values of exactly their type into ``samples_typed``; a value-less bad-quality
marker goes to its signal's lane. Anything else is a ``type_mismatch``: the writer dead-letters it with the
signal, the declared and the received type. Nothing is coerced.

Messages whose signals are all float64 and whose values are all floats (the hot path) never reach the loops
here: ``CellEntry.all_float`` answers for a whole tuple of names with one dict lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from datafactory.contract.sample import Sample
from datafactory.contract.values import INT64_MAX, SignalType, infer_type, kind_of, type_problem
from datafactory.db.samples import TypedRow
from ingest.signal_cache import CellEntry

FLOAT64, INT64, UINT64, BOOL, STRING = (
    SignalType.FLOAT64,
    SignalType.INT64,
    SignalType.UINT64,
    SignalType.BOOL,
    SignalType.STRING,
)


@dataclass(frozen=True, slots=True)
class Mismatch:
    index: int  # the sample's position in its message
    sample: Sample
    declared: SignalType
    reason: str = "type_mismatch"

    def detail(self, cell_key: str) -> str:
        value = self.sample.value
        if self.reason == "string_nul":
            return f"signal {cell_key}/{self.sample.signal}: a string with U+0000, which PostgreSQL text cannot hold"
        return (
            f"signal {cell_key}/{self.sample.signal} is declared {self.declared.value} but received a"
            f" {kind_of(value)} value {value!r:.60}"
        )


def inferred_types(typed: list[tuple[int, Sample]]) -> dict[str, SignalType]:
    """The type each signal's first typed value implies (for auto-registration)."""
    out: dict[str, SignalType] = {}
    for _, s in typed:
        t = infer_type(s.value)
        if t is not None:
            out.setdefault(s.signal, t)
    return out


def split_float_columns(
    entry: CellEntry,
    *,
    names: tuple[str, ...],
    sids: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    qualities: np.ndarray,
    typed_rows: list[TypedRow],
    mismatches: list[Mismatch],
) -> np.ndarray:
    """For float columns of a message with some non-float64 signal: the mask of rows that stay in the float lane.
    Markers (NaN) of other signals move to ``typed_rows``; their float values are ``mismatches``."""
    keep = np.ones(len(names), dtype=bool)
    for i, name in enumerate(names):
        declared = entry.type_of(name)
        if declared is FLOAT64:
            continue
        keep[i] = False
        t, v, q = int(times[i]), float(values[i]), int(qualities[i])
        if math.isnan(v):
            typed_rows.append((int(sids[i]), t, q, declared, None))
        else:
            mismatches.append(Mismatch(i, Sample(name, t, v, q), declared))
    return keep


def route_typed(
    entry: CellEntry,
    *,
    typed: list[tuple[int, Sample]],
    float_extra: list[tuple[int, int, float, int]],
    typed_rows: list[TypedRow],
    mismatches: list[Mismatch],
    unknown: list[tuple[int, Sample]],
) -> None:
    """Route samples with int, bool or string values: into ``typed_rows``, into ``float_extra`` (an integer within
    ±2^53 of a float64 signal), or out as a mismatch or an unknown (unregistered) signal."""
    ids, types = entry.signals, entry.types
    for index, s in typed:
        name, t, value, quality = s
        sid = ids.get(name)
        if sid is None:
            unknown.append((index, s))
            continue
        declared = types.get(name, FLOAT64)
        kind = type(value)
        # The usual pairs first, each the same test as type_problem's (values are contract values already:
        # integers within -2^63 … 2^64-1, strings within their length); anything else asks type_problem.
        if kind is str:
            if "\x00" in value:  # type: ignore[operator]
                mismatches.append(Mismatch(index, s, declared, "string_nul"))  # would fail the batch's COPY
                continue
            if declared is STRING:
                typed_rows.append((sid, t, quality, declared, value))
                continue
        elif kind is int:
            if (declared is INT64 and value <= INT64_MAX) or (declared is UINT64 and value >= 0):  # type: ignore[operator]
                typed_rows.append((sid, t, quality, declared, value))
                continue
        elif kind is bool and declared is BOOL:
            typed_rows.append((sid, t, quality, declared, value))
            continue
        if type_problem(declared, value) is not None:
            mismatches.append(Mismatch(index, s, declared))
        elif declared is FLOAT64:
            float_extra.append((sid, t, float(value), quality))  # type: ignore[arg-type]
        else:
            typed_rows.append((sid, t, quality, declared, value))


def reading_columns(rows: list[TypedRow]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The float64 readings of typed rows without a string value, as float-lane columns: int64/uint64 as the
    nearest float64, bool as 0/1, a marker as NaN (NULL). What ``samples.value`` holds for them."""
    n = len(rows)
    sids = np.fromiter((r[0] for r in rows), np.int32, n)
    times = np.fromiter((r[1] for r in rows), np.int64, n)
    values = np.fromiter((math.nan if r[4] is None else float(r[4]) for r in rows), np.float64, n)
    qualities = np.fromiter((r[2] for r in rows), np.int64, n)
    return sids, times, values, qualities
