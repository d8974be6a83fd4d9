"""Parts of the ingest benchmark for typed samples and its ceiling (used by ``benchmarks.ingest``).

* Mixed-type payloads: per cell 85 float64 signals, 10 int64 (values beyond 2^53, so exact storage matters) and
  5 strings (order numbers), declared in the meta, in ``df-json/2``.
* The ceiling ``copy_binary_parallel_samples_per_s``: the float rows of the float64 run, packed beforehand
  exactly as the worker packs them (``db.samples.pack_columns``, sorted by signal and time per batch), sent by
  binary COPY in batches of the worker's size, one transaction per batch, over as many connections as one
  worker has writer lanes. Nothing of the worker (MQTT, decoding, routing) is in it: it is what the database
  and the machine take.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np
import psycopg

from datafactory.contract.payload import SignalMeta, encode_meta
from datafactory.contract.topics import CellPath, TopicKind
from datafactory.contract.values import SignalType
from datafactory.db import timescale
from datafactory.db.connect import drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.db.samples import copy_binary, pack_columns

FLOAT_SIGNALS, INT_SIGNALS, STRING_SIGNALS = 85, 10, 5  # of 100 per cell: 85 % / 10 % / 5 %


def signal_types(signals_per_cell: int, *, mixed: bool) -> list[SignalType]:
    if not mixed:
        return [SignalType.FLOAT64] * signals_per_cell
    assert signals_per_cell == FLOAT_SIGNALS + INT_SIGNALS + STRING_SIGNALS
    return (
        [SignalType.FLOAT64] * FLOAT_SIGNALS + [SignalType.INT64] * INT_SIGNALS + [SignalType.STRING] * STRING_SIGNALS
    )


def meta(signals_per_cell: int, *, mixed: bool) -> bytes:
    types = signal_types(signals_per_cell, mixed=mixed)
    return encode_meta(
        [SignalMeta(f"s{k:03d}", unit="kW", type=t) for k, t in enumerate(types)],
        gateway="gw-1",
    )


def payloads(
    cells: list[CellPath],
    signals_per_cell: int,
    ticks: int,
    start_us: int,
    step_us: int,
    *,
    mixed: bool,
    ticks_per_message: int = 1,
) -> Iterator[tuple[str, bytes]]:
    """Per tick, one message per cell with one sample of each of its signals (floats as ``benchmarks.ingest``
    always sent them; with ``mixed``, the int64 and string signals' values instead); with ``ticks_per_message``
    above 1, each message carries that many ticks of its cell, as a gateway that batches longer sends them."""
    names = [f"s{k:03d}" for k in range(signals_per_cell)]
    types = signal_types(signals_per_cell, mixed=mixed)
    topics = [c.topic(TopicKind.DATA) for c in cells]
    fmt = "df-json/2" if mixed else "df-json/1"
    for first in range(0, ticks, ticks_per_message):
        group = range(first, min(first + ticks_per_message, ticks))
        for c, topic in enumerate(topics):
            values = []
            for tick in group:
                t = start_us + tick * step_us
                for k, (name, kind) in enumerate(zip(names, types, strict=True)):
                    if kind is SignalType.INT64:
                        v = str((1 << 53) + tick * 1000 + c * 100 + k)
                    elif kind is SignalType.STRING:
                        v = f'"order-{tick}-{c}-{k}"'
                    else:
                        v = repr(tick * 0.5 + c + k * 0.001)
                    values.append(f'["{name}",{t},{v},0]')
            yield topic, f'{{"fmt":"{fmt}","gw":"gw-1","seq":{first},"samples":[{",".join(values)}]}}'.encode()


def copy_binary_parallel(
    server: str,
    *,
    cells: int,
    signals_per_cell: int,
    ticks: int,
    start_us: int,
    step_us: int,
    connections: int,
    batch_rows: int,
) -> float:
    """Rows per second of binary COPY of the pre-packed float rows over ``connections`` connections."""
    signals = cells * signals_per_cell
    ticks_per_batch = max(1, batch_rows // signals)
    batches: list[bytes] = []
    for first in range(0, ticks, ticks_per_batch):
        n_ticks = min(ticks_per_batch, ticks - first)
        tick = np.repeat(np.arange(first, first + n_ticks), signals)
        s = np.tile(np.arange(signals), n_ticks)
        sids = (s + 1).astype(np.int32)
        times = (start_us + tick * step_us).astype(np.int64)
        values = tick * 0.5 + s // signals_per_cell + (s % signals_per_cell) * 0.001
        order = np.lexsort((times, sids))
        quality = np.zeros(len(sids), np.int64)
        batches.append(pack_columns(sids[order], times[order], values[order], quality))
    db_url = with_database(server, f"dfbench_copybin_{uuid.uuid4().hex[:6]}")
    migrate(db_url)
    try:
        conns = [psycopg.connect(db_url) for _ in range(connections)]
        start = threading.Barrier(connections + 1)
        errors: list[BaseException] = []

        def send(conn: psycopg.Connection, mine: list[bytes]) -> None:
            start.wait()
            try:
                for data in mine:
                    copy_binary(conn, data)
                    conn.commit()
            except BaseException as err:  # reported by the caller
                errors.append(err)

        threads = [threading.Thread(target=send, args=(conn, batches[i::connections])) for i, conn in enumerate(conns)]
        for th in threads:
            th.start()
        start.wait()
        started = time.monotonic()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - started
        for conn in conns:
            conn.close()
        if errors:
            raise errors[0]
    finally:
        drop_database(db_url)
    return ticks * signals / elapsed


def typed_size(conn: psycopg.Connection) -> tuple[float, int]:
    """Bytes on disk of both sample tables and the number of samples (each once: ``sample_values``)."""
    size = 0.0
    for table in ("samples", "samples_typed"):
        if timescale.installed(conn) and timescale.is_hypertable(conn, table):
            row = conn.execute("SELECT hypertable_size(%s::regclass)", (table,)).fetchone()
        else:
            row = conn.execute(
                "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%s::regclass)", (table,)
            ).fetchone()
        size += float(row[0]) if row and row[0] is not None else 0.0
    row = conn.execute("SELECT count(*) FROM sample_values").fetchone()
    return size, int(row[0]) if row else 0
