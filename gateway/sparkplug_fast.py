"""The data fast paths: a device's common data message read without the general decoder's per-metric checks.

Both give exactly the samples ``MetricTable.decode`` would, or None (then the general decoder reads the message):

* **lean** (``_lean``): every metric a bound Float/Double by alias and nothing else, read through
  ``LeanPayload`` (``gateway.sparkplug_proto``), whose re-measured size proves there is nothing else in it.
* **layout** (``Skeleton``): edge nodes that publish on a timer send the same metrics in the same order every
  time; the messages differ only in values, timestamps and sequence number. After two lean messages of the same
  size, the second's byte layout is recorded — it must be serialised canonically, so every field's position is
  known: which bytes are fixed (tags, lengths, aliases, datatypes), which hold a double, which a varint (payload
  and metric timestamps, seq). A later message of the same size whose fixed bytes are all the same and whose
  varints keep their lengths (continuation bits at the same places) has every field where it was: its values are
  the doubles at the recorded positions and the varints decoded there — what any protobuf parser reads from those
  bytes — and it is read with numpy, not metric by metric. Only Double values and varints of at most 9 bytes are
  recorded; a message with another length, a changed byte or a varint that grew or shrank is read the lean way.

Nothing (no normaliser's deadband state) changes before a whole message is known to fit. A birth forgets the
layout (``MetricTable.decode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isfinite
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from datafactory.contract.sample import Sample, new_sample
from gateway.normalise import Normaliser
from gateway.sources import Reading
from gateway.sparkplug_metrics import Decoding
from gateway.sparkplug_proto import DOUBLE, FLOAT, LeanPayload
from gateway.sparkplug_state import DeviceState

_DOUBLE_TAG, _TS_TAG, _DATATYPE_TAG, _METRIC_TAG, _SEQ_TAG, _PAYLOAD_TS_TAG = 0x69, 0x18, 0x20, 0x12, 0x18, 0x08
_MAX_VARINT = 9
_FLOAT_TYPES = frozenset((DOUBLE, FLOAT))


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``pos``; IndexError if it runs past the end."""
    value = shift = 0
    while True:
        b = raw[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7


@dataclass(frozen=True, slots=True)
class Skeleton:
    size: int
    fixed_at: np.ndarray  # positions of the bytes that must be equal …
    fixed: np.ndarray  # … and those bytes
    values_at: np.ndarray  # (metrics, 8) positions of each metric's double, in message order
    ts_at: np.ndarray | None  # (metrics, k) positions of each metric's timestamp varint, or None (none has one)
    payload_ts: tuple[int, int] | None  # [start, end) of the payload timestamp varint
    seq: tuple[int, int] | None  # [start, end) of the seq varint
    cont_at: np.ndarray  # positions of every variable varint's bytes …
    cont: np.ndarray  # … and their continuation bits (0x80 on all but the last byte of each)

    @classmethod
    def of(cls, raw: bytes, msg: Any) -> Skeleton | None:
        """The layout of ``raw`` (already read as ``msg`` through the lean view), or None if it has none."""
        if msg.SerializeToString() != raw:
            return None  # not canonical (field order): the positions below would not be the parser's
        variable = np.zeros(len(raw), dtype=bool)
        spans: list[tuple[int, int]] = []
        values: list[int] = []
        stamps: list[int] = []
        width = None

        def var(start: int) -> int:
            _, end = _varint(raw, start)
            if end - start > _MAX_VARINT:
                raise ValueError("varint too long")
            variable[start:end] = True
            spans.append((start, end))
            return end

        try:
            pos, payload_ts, seq = 0, None, None
            if raw[:1] == bytes((_PAYLOAD_TS_TAG,)):
                end = var(1)
                payload_ts, pos = (1, end), end
            while pos < len(raw) and raw[pos] == _METRIC_TAG:
                length, start = _varint(raw, pos + 1)
                end = start + length
                if raw[start] != 0x10:
                    return None  # the alias comes first in a canonical lean message; anything else: no layout
                _, p = _varint(raw, start + 1)
                if p < end and raw[p] == _TS_TAG:
                    ts_end = var(p + 1)
                    if width not in (None, ts_end - p - 1):
                        return None  # timestamps of different widths: no vectorised decode
                    width, p = ts_end - p - 1, ts_end
                    stamps.append(p - width)
                elif width is not None:
                    return None  # some metrics with a timestamp, some without
                if p < end and raw[p] == _DATATYPE_TAG:
                    _, p = _varint(raw, p + 1)  # fixed bytes: the lean path accepted only Float/Double here
                if end - p != 9 or raw[p] != _DOUBLE_TAG:
                    return None  # a Float value (or anything else): not recorded
                variable[end - 8 : end] = True
                values.append(end - 8)
                pos = end
            if pos < len(raw):
                if raw[pos] != _SEQ_TAG:
                    return None
                end = var(pos + 1)
                seq, pos = (pos + 1, end), end
            if pos != len(raw) or not values:
                return None
        except (IndexError, ValueError):
            return None
        fixed_at = np.flatnonzero(~variable)
        cont_at = np.concatenate([np.arange(s, e) for s, e in spans]) if spans else np.zeros(0, dtype=np.int64)
        data = np.frombuffer(raw, dtype=np.uint8)
        values_at = np.asarray(values)[:, None] + np.arange(8)
        ts_at = np.asarray(stamps)[:, None] + np.arange(width) if width is not None else None
        return cls(len(raw), fixed_at, data[fixed_at].copy(), values_at, ts_at, payload_ts, seq, cont_at,
                   data[cont_at] & 0x80)  # fmt: skip

    def read(self, raw: bytes) -> tuple[int | None, int | None, list[float], bool, list[int] | None] | None:
        """(payload timestamp, seq, the doubles, whether all are finite, the metric timestamps or None) of a
        message in this layout, or None when it is not in it."""
        if len(raw) != self.size:
            return None
        data = np.frombuffer(raw, dtype=np.uint8)
        if not (np.array_equal(data[self.fixed_at], self.fixed) and np.array_equal(data[self.cont_at] & 0x80,
                                                                                   self.cont)):  # fmt: skip
            return None
        doubles = data[self.values_at].view("<f8")[:, 0]
        stamps = None
        if self.ts_at is not None:
            groups = (data[self.ts_at] & 0x7F).astype(np.int64)
            stamps = (groups << (7 * np.arange(self.ts_at.shape[1], dtype=np.int64))).sum(axis=1).tolist()
        payload_ts = _varint(raw, self.payload_ts[0])[0] if self.payload_ts is not None else None
        seq = _varint(raw, self.seq[0])[0] if self.seq is not None else None
        return payload_ts, seq, doubles.tolist(), bool(np.isfinite(doubles).all()), stamps


@dataclass(frozen=True, slots=True)
class Layout:
    skeleton: Skeleton
    norms: list[Normaliser]  # each metric's normaliser, in message order
    cells: list[str]
    signals: list[str]
    passthrough: bool  # every normaliser passes a finite float through unchanged


def decode_fast(
    norms: list[Normaliser], dev: DeviceState, raw: bytes, received: int
) -> tuple[int | None, Decoding] | None:
    """(seq, readings) of a born device's data message on a fast path, or None."""
    layout: Layout | None = dev.layout
    if layout is not None:
        got = layout.skeleton.read(raw)
        if got is not None:
            return got[1], _from_layout(layout, got, received)
    if not dev.float_aliases:
        return None
    lean = _lean(norms, dev.float_aliases, raw, received)
    if lean is None:
        return None
    msg, result = lean
    size, dev.lean_size = dev.lean_size, len(raw)
    if size == len(raw) and dev.layout_tried != size:  # twice the same size: perhaps a repeating message
        dev.layout_tried = size
        skeleton = Skeleton.of(raw, msg)
        if skeleton is not None:
            chosen = [norms[dev.float_aliases[m.alias]] for m in msg.metrics]
            dev.layout = Layout(skeleton, chosen, [n.cell for n in chosen], [n.signal for n in chosen],
                                all(n.passthrough for n in chosen))  # fmt: skip
    return (msg.seq if msg.HasField("seq") else None), result


def _from_layout(layout: Layout, got: tuple[Any, ...], received: int) -> Decoding:
    payload_ts, _, values, finite, stamps = got
    default_us = payload_ts * 1000 if payload_ts is not None else received
    times = [s * 1000 for s in stamps] if stamps is not None else None
    newest = max(times) if times else default_us
    if layout.passthrough and finite:
        if times is None:
            out = [(c, new_sample(Sample, (s, default_us, v, 0)))
                   for c, s, v in zip(layout.cells, layout.signals, values, strict=True)]  # fmt: skip
        else:
            out = [(c, new_sample(Sample, (s, t, v, 0)))
                   for c, s, t, v in zip(layout.cells, layout.signals, times, values, strict=True)]  # fmt: skip
        return Decoding(out, [], newest)
    out, later = [], []
    for k, (norm, v) in enumerate(zip(layout.norms, values, strict=True)):
        t = times[k] if times is not None else default_us
        if norm.passthrough and isfinite(v):
            out.append((norm.cell, new_sample(Sample, (norm.signal, t, v, 0))))
        else:
            later.append((norm, t, v))
    for norm, t, v in later:
        sample = norm.apply(v, t)
        if sample is not None:
            out.append((norm.cell, sample))
    return Decoding(out, [], newest)


def _lean(norms: list[Normaliser], fast: dict[int, int], raw: bytes, received: int) -> tuple[Any, Decoding] | None:
    """The lean view's message and its readings, or None when it is not in the lean shape."""
    try:
        msg = LeanPayload.FromString(raw)
    except DecodeError:
        return None
    msg.DiscardUnknownFields()
    if msg.ByteSize() != len(raw):
        return None  # another field, an explicit zero, a duplicate: see sparkplug_proto._lean_file
    default_us = msg.timestamp * 1000 if msg.HasField("timestamp") else received
    out: list[Reading] = []
    later: list[tuple[int, int, float]] = []
    append, newest, used_default = out.append, 0, False
    for m in msg.metrics:
        i = fast.get(m.alias)  # 0 (no alias) is never in it
        dt = m.datatype
        if i is None or (dt and dt not in _FLOAT_TYPES):
            return None
        v = m.double_value
        if not v and not m.HasField("double_value"):
            v = m.float_value
            if not v and not m.HasField("float_value"):
                return None  # no value at all: the general path refuses it with its reason
        ts = m.timestamp
        if ts:
            t = ts * 1000
            if t > newest:  # noqa: PLR1730 -- a call to max() per metric costs more than this comparison
                newest = t
        else:
            t = default_us
            used_default = True
        norm = norms[i]
        if norm.passthrough and isfinite(v):
            append((norm.cell, new_sample(Sample, (norm.signal, t, v, 0))))
        else:
            later.append((i, t, v))
    for i, t, v in later:
        sample = norms[i].apply(v, t)
        if sample is not None:
            append((norms[i].cell, sample))
    return msg, Decoding(out, [], max(newest, default_us) if used_default else newest)
