"""The gateway benchmarks' subscriber counts samples without parsing each message whole
(``benchmarks.gateway_process.count_samples``): it must agree with a full parse on whatever the gateway encodes,
including string values that hold the very bytes it counts."""

from __future__ import annotations

import math

import orjson

from benchmarks.gateway_process import count_samples
from datafactory.contract.payload import encode_batch
from datafactory.contract.sample import Sample


def _full(payload: bytes) -> tuple[int, int]:
    samples = orjson.loads(payload)["samples"]
    return len(samples), samples[-1][1]


def test_the_shortcut_agrees_with_a_full_parse() -> None:
    batches = [
        [Sample(f"r{i}", 1_000 + i, float(i) * 1.5, 0) for i in range(5000)],  # what the polled benchmarks send
        [Sample("a", 7, 2**63 - 1, 0)],
        [Sample("a", 5, 'x["y', 0), Sample("b", 6, 2, 0)],  # a string value holding `["`: parsed whole
        [Sample("a", 5, '"', 0), Sample("b", 9, True, 0)],
        [Sample("m", 11, math.nan, 0x80000000)],  # a marker: null value
        [Sample("s", 12, "", 0)] * 3,
    ]
    for samples in batches:
        payload = encode_batch(samples, gateway="gw-1", seq=4)
        assert count_samples(payload) == _full(payload) == (len(samples), samples[-1].time_us)


def test_messages_with_string_values_take_the_full_parse() -> None:
    """Quotes inside a string are escaped, so a value never forms ``["``; string values still change the quote
    count, and such a message is parsed whole rather than trusted to the shortcut."""
    samples = [Sample("a", 1, '["x","["', 0), Sample("b", 2, 3.0, 0)]
    payload = encode_batch(samples, gateway="gw-1", seq=1)
    assert payload.count(b'"') != 2 * (len(samples) + 6)  # not the numbers-only shape
    assert count_samples(payload) == (2, 2)
