"""Test support for the polled sources (Modbus, S7): run an adapter for a few polls and index what it read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from datafactory.contract.sample import Sample
from gateway.polling import PolledSource
from gateway.sources import SourceAdapter


async def polls(
    adapter: SourceAdapter, n: int, max_s: float = 10.0, *, between: Callable[[int], object] | None = None
) -> list[list[Any]]:
    """Open ``adapter``, take its first ``n`` non-empty poll results (fewer if ``max_s`` passes first), close.
    ``between(k)`` runs after the k-th result and before the next poll (a test changes the device there)."""
    return await _take(adapter, adapter.stream, n, max_s, between)


async def polls_as_runs(
    adapter: PolledSource, n: int, max_s: float = 10.0, *, between: Callable[[int], object] | None = None
) -> list[list[Any]]:
    """``polls`` through ``stream_runs`` (what the runner reads): each round's readings, then its runs' rows as
    ``(cell, Sample)`` readings, after checking that every row is a plain 4-tuple of good quality and that some
    values did come as rows (else the fast path was not what was tested)."""
    rows_seen = 0

    async def merged() -> AsyncIterator[list[Any]]:
        nonlocal rows_seen
        async for readings, runs in adapter.stream_runs():
            out = list(readings)
            for cell, rows in runs:
                rows_seen += len(rows)
                assert all(type(row) is tuple and len(row) == 4 and row[3] == 0 for row in rows), rows[:3]
                out += [(cell, Sample(*row)) for row in rows]
            yield out

    got = await _take(adapter, merged, n, max_s, between)
    assert rows_seen, "no value came as a row of a run"
    return got


async def _take(
    adapter: SourceAdapter | PolledSource,
    stream: Callable[[], AsyncIterator[list[Any]]],
    n: int,
    max_s: float,
    between: Callable[[int], object] | None,
) -> list[list[Any]]:
    """Open ``adapter``, take ``n`` results of ``stream()`` (calling ``between`` after each), close."""
    await adapter.open()
    out: list[list[Any]] = []

    async def read() -> None:
        async for readings in stream():
            out.append(readings)
            if len(out) >= n:
                return
            if between is not None:
                between(len(out))

    try:
        await asyncio.wait_for(read(), max_s)
    except TimeoutError:
        pass
    finally:
        await adapter.close()
    return out


def by_signal(polls: list[list[Any]]) -> dict[str, list[Any]]:
    """The samples of ``polls`` per signal name, in order."""
    out: dict[str, list[Any]] = {}
    for readings in polls:
        for _, s in readings:
            out.setdefault(s.signal, []).append(s)
    return out
