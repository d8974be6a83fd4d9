"""Store-and-forward buffer, normaliser and batcher: no network needed."""

from __future__ import annotations

import math

import orjson
import pytest

from datafactory.config.models import Deadband, DeadbandKind, OverflowPolicy, SignalBinding
from datafactory.contract.meanings import Meaning
from datafactory.contract.payload import decode_batch, encode_batch
from datafactory.contract.quality import BAD_NO_COMMUNICATION
from datafactory.contract.sample import Sample, SampleRow
from gateway.batcher import Batcher
from gateway.buffer import Buffer
from gateway.normalise import BAD_TYPE_MISMATCH, Normaliser


def _samples(start: int, n: int) -> list[Sample]:
    return [Sample("power", 1_700_000_000_000_000 + i, float(i)) for i in range(start, start + n)]


def _buffer(tmp_path, max_bytes: int, overflow: OverflowPolicy) -> Buffer:
    b = Buffer(tmp_path / "b.sqlite", max_bytes=max_bytes, overflow=overflow, gateway="gw-1")
    b.open()
    return b


def test_batches_survive_reopen_in_order_with_monotonic_seq(tmp_path) -> None:
    b = _buffer(tmp_path, 10_000_000, OverflowPolicy.DROP_OLDEST)
    ids = [b.append("t/data", _samples(i * 100, 100)) for i in range(5)]
    b.delete(b.pending(0, 2))  # the first two were acknowledged
    b.close()
    b = _buffer(tmp_path, 10_000_000, OverflowPolicy.DROP_OLDEST)
    pending = b.pending(0, 100)
    assert [p.id for p in pending] == ids[2:]
    assert b.depth_batches == 3 and b.depth_samples == 300
    assert [decode_batch(p.payload).batch.seq for p in pending] == ids[2:]
    last = ids[-1]
    assert last is not None  # the buffer is far from full: nothing was dropped
    assert b.append("t/data", _samples(0, 1)) == last + 1  # ids are never reused
    b.close()


@pytest.mark.parametrize("policy", [OverflowPolicy.DROP_OLDEST, OverflowPolicy.DROP_NEWEST])
def test_overflow_drops_are_counted(tmp_path, policy) -> None:
    size = len(
        orjson.dumps({"fmt": "df-json/1", "gw": "gw-1", "seq": 1, "samples": [list(s) for s in _samples(0, 100)]})
    )
    b = _buffer(tmp_path, int(size * 3.5), policy)
    for i in range(6):
        b.append("t/data", _samples(i * 100, 100))
    kept = [decode_batch(p.payload).batch.samples[0].value for p in b.pending(0, 100)]
    assert b.depth_batches == 3 and b.depth_bytes <= b.max_bytes
    assert b.dropped_batches == 3 and b.dropped_samples == 300
    assert kept == ([300.0, 400.0, 500.0] if policy is OverflowPolicy.DROP_OLDEST else [0.0, 100.0, 200.0])
    b.close()


def test_normaliser_scaling_booleans_and_bad_values() -> None:
    n = Normaliser(SignalBinding(cell="a/b/c", signal="p", meaning=Meaning.POWER_KW, scale=0.5, offset=1.0))
    scaled = n.apply(10, 1)
    assert scaled is not None and scaled.value == 6.0  # no deadband: nothing is suppressed
    boolean = n.apply(True, 2)
    assert boolean is not None and boolean.value == 1.0  # booleans are 0/1, not scaled
    bad = n.apply("n/a", 3)
    assert bad is not None and isinstance(bad.value, float)
    assert math.isnan(bad.value) and bad.quality == BAD_TYPE_MISMATCH
    lost = n.apply(None, 4, BAD_NO_COMMUNICATION)
    assert lost is not None and isinstance(lost.value, float)
    assert math.isnan(lost.value) and lost.quality == BAD_NO_COMMUNICATION


def test_deadbands() -> None:
    absolute = Normaliser(
        SignalBinding(
            cell="a/b/c",
            signal="t",
            meaning=Meaning.TEMPERATURE,
            deadband=Deadband(kind=DeadbandKind.ABSOLUTE, value=1.0),
        )
    )
    passed = [absolute.apply(v, i) for i, v in enumerate([20.0, 20.5, 21.0, 21.1, 19.0])]
    assert [s.value for s in passed if s is not None] == [20.0, 21.1, 19.0]  # 21.0 is exactly 1.0 away: suppressed
    assert absolute.apply(19.2, 9, 0x40000000) is not None  # a quality change always passes

    binding = SignalBinding(
        cell="a/b/c", signal="p", meaning=Meaning.POWER_KW, deadband=Deadband(kind=DeadbandKind.PERCENT, value=10)
    )
    of_range = Normaliser(binding, eu_span=50.0)  # 10 % of the EU range = 5
    assert [of_range.apply(v, i) is not None for i, v in enumerate([100.0, 104.0, 106.0])] == [True, False, True]
    of_last = Normaliser(binding)  # no EU range: 10 % of the last value passed on (100 → 10)
    assert [of_last.apply(v, i) is not None for i, v in enumerate([100.0, 109.0, 111.0])] == [True, False, True]


def test_batcher_flushes_by_size_and_age() -> None:
    flushed: list[tuple[str, int]] = []
    b = Batcher(max_samples=3, max_ms=1, flush=lambda cell, samples: flushed.append((cell, len(samples))))
    b.add([("x", s) for s in _samples(0, 7)] + [("y", s) for s in _samples(0, 1)])
    assert flushed == [("x", 3), ("x", 3)]
    import time

    time.sleep(0.01)
    b.flush_due()
    assert sorted(flushed[2:]) == [("x", 1), ("y", 1)]


def test_batcher_single_cell_runs_split_at_the_limit_in_order() -> None:
    got: list[list[SampleRow]] = []
    b = Batcher(max_samples=4, max_ms=1000, flush=lambda cell, samples: got.append(samples))
    b.add([("x", s) for s in _samples(0, 2)])  # opens a batch of 2
    b.add([("x", s) for s in _samples(2, 9)])  # one cell: fills it to 4, one more of 4, 3 left open
    assert [len(batch) for batch in got] == [4, 4]
    b.flush_all()
    assert [len(batch) for batch in got] == [4, 4, 3]
    assert [s[2] for batch in got for s in batch] == [float(i) for i in range(11)]
    assert b.samples_in == 11


def test_rows_of_a_polled_run_batch_and_encode_as_samples_do() -> None:
    """``Batcher.add_run`` takes a polled source's rows (plain tuples) into the cell's open batch, counts them,
    splits at the limit like readings, and a batch of rows is the same message as the same samples."""
    got: list[tuple[str, list[SampleRow]]] = []
    b = Batcher(max_samples=4, max_ms=1000, flush=lambda cell, samples: got.append((cell, samples)))
    b.add([("x", s) for s in _samples(0, 1)])  # a reading first: runs join the same open batch
    rows: list[SampleRow] = [(f"r{i}", 1_000 + i, i, 0) for i in range(6)]
    b.add_run("x", rows)
    b.flush_all()
    assert [(cell, len(batch)) for cell, batch in got] == [("x", 4), ("x", 3)]
    assert b.samples_in == 7
    flat = [s for _, batch in got for s in batch]
    assert flat[1:] == rows and type(flat[1]) is tuple  # kept as they are, in order
    assert encode_batch(rows, gateway="gw-1", seq=2) == encode_batch([Sample(*r) for r in rows], gateway="gw-1", seq=2)


def test_declared_types_keep_exact_values_and_refuse_what_does_not_fit() -> None:
    from datafactory.config.models import SignalBinding
    from datafactory.contract.values import SignalType

    def norm(t: SignalType, scale: float = 1.0, offset: float = 0.0) -> Normaliser:
        binding = SignalBinding(
            cell="a/b/c", signal="x", meaning=Meaning.GENERIC, signal_type=t, scale=scale, offset=offset
        )
        return Normaliser(binding)

    big = 2**64 - 1
    assert norm(SignalType.UINT64).apply(big, 1) == Sample("x", 1, big, 0)  # not rounded through a float
    assert norm(SignalType.INT64, scale=10, offset=-3).apply(7, 1) == Sample("x", 1, 67, 0)
    assert norm(SignalType.BOOL).apply(True, 1) == Sample("x", 1, True, 0)
    assert norm(SignalType.STRING).apply("Mould-7", 1) == Sample("x", 1, "Mould-7", 0)
    for t, raw in [(SignalType.UINT64, -1), (SignalType.INT64, 2**63), (SignalType.BOOL, 1), (SignalType.STRING, 3)]:
        s = norm(t).apply(raw, 1)
        assert s is not None and s.quality == BAD_TYPE_MISMATCH, (t, raw)
        assert isinstance(s.value, float) and math.isnan(s.value), (t, raw)
