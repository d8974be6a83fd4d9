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
from datafactory.contract.values import SignalType, infer_type, kind_of, type_problem
from datafactory.db.samples import TypedRow
from ingest.signal_cache import CellEntry

FLOAT64 = SignalType.FLOAT64


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
    ids = entry.signals
    for index, s in typed:
        sid = ids.get(s.signal)
        if sid is None:
            unknown.append((index, s))
            continue
        declared = entry.type_of(s.signal)
        if type(s.value) is str and "\x00" in s.value:
            mismatches.append(Mismatch(index, s, declared, "string_nul"))  # would fail the whole batch's COPY
        elif type_problem(declared, s.value) is not None:
            mismatches.append(Mismatch(index, s, declared))
        elif declared is FLOAT64:
            float_extra.append((sid, s.time_us, float(s.value), s.quality))  # type: ignore[arg-type]
        else:
            typed_rows.append((sid, s.time_us, s.quality, declared, s.value))


def reading_columns(rows: list[TypedRow]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The float64 readings of typed rows without a string value, as float-lane columns: int64/uint64 as the
    nearest float64, bool as 0/1, a marker as NaN (NULL). What ``samples.value`` holds for them."""
    n = len(rows)
    sids = np.fromiter((r[0] for r in rows), np.int32, n)
    times = np.fromiter((r[1] for r in rows), np.int64, n)
    values = np.fromiter((math.nan if r[4] is None else float(r[4]) for r in rows), np.float64, n)
    qualities = np.fromiter((r[2] for r in rows), np.int64, n)
    return sids, times, values, qualities
