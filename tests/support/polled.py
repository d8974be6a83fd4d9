"""Test support for the polled sources (Modbus, S7): run an adapter for a few polls and index what it read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.sources import SourceAdapter


async def polls(
    adapter: SourceAdapter, n: int, max_s: float = 10.0, *, between: Callable[[int], object] | None = None
) -> list[list[Any]]:
    """Open ``adapter``, take its first ``n`` non-empty poll results (fewer if ``max_s`` passes first), close.
    ``between(k)`` runs after the k-th result and before the next poll (a test changes the device there)."""
    await adapter.open()
    out: list[list[Any]] = []

    async def read() -> None:
        async for readings in adapter.stream():
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
