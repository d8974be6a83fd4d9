"""Source adapters: one module per protocol, named like the config ``kind`` it serves.
Part of the ``gateway`` service: imports the core and ``gateway.*``; no other service imports it.

Every adapter implements the small ``SourceAdapter`` interface below. Constructors do no I/O; ``open()``
connects and subscribes; ``stream()`` yields lists of readings until the connection fails, when it raises
``ConnectionLost``; ``close()`` releases everything and never raises. Adapters never retry: the runner owns
backoff, reconnection and the comm-lost markers. Library errors (asyncua, paho) are translated into
``datafactory.errors`` exactly once, inside the adapter.

The stream yields *lists* of ``(cell path, Sample)`` rather than single readings because one OPC-UA publish
response or MQTT message carries many values; handing them on as one list keeps the per-value cost low at
tens of thousands of changes per second.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from datafactory.config.models import SignalBinding
from datafactory.contract.sample import Sample, SampleRow

Reading = tuple[str, Sample]
"""A normalised sample and the path ``area/line/cell`` of the cell it belongs to."""
CellRun = tuple[str, list[SampleRow]]
"""Samples of one cell read by one request, in a polled source's ``stream_runs`` (see ``gateway.polling``)."""


class SourceAdapter(Protocol):
    id: str

    def bindings(self) -> list[SignalBinding]:
        """Every signal this source delivers (the runner writes comm-lost markers for them)."""
        ...

    def counters(self) -> dict[str, int]:
        """Problems counted since ``open()`` (skipped messages, refused items, …) for the status topic."""
        ...

    async def open(self) -> None: ...

    def stream(self) -> AsyncIterator[list[Reading]]: ...

    async def close(self) -> None: ...


def create_adapter(source: object, *, mqtt_url: str, state_dir: Path) -> SourceAdapter:
    """The adapter for a source config, looked up by its ``kind`` (module ``gateway.sources.<kind>``)."""
    kind = getattr(source, "kind", None)
    if not isinstance(kind, str) or not kind.isidentifier():
        raise ValueError(f"source {source!r} has no valid kind")
    module = importlib.import_module(f"gateway.sources.{kind}")
    adapter: SourceAdapter = module.create(source, mqtt_url=mqtt_url, state_dir=state_dir)
    return adapter
