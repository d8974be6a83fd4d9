"""Gaps marked where they really are, in the database: real asyncua server → gateway → Mosquitto → ingest → PostgreSQL.

* the gateway process SIGKILLed and restarted 3 s later → one Bad_NoCommunication marker per signal at the
  watermark (after every sample stored before the kill, before the kill itself), a machine stop and restart
  inside the gap is not reported as running, the value that did not change is known again at the restart,
  everything buffered arrives and nothing twice;
* a clean stop with samples still in the batcher → none lost, a Bad_Shutdown marker per signal after them;
* a 3 s cut of the TCP connection to the server (a loopback proxy in the test) → one marker of about 3 s per
  signal, no signal reads unknown after the reconnect, no change lost outside the cut.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import yaml

from analytics.states import state_intervals
from datafactory.config.analytics import AnalyticsConfig
from datafactory.contract.quality import BAD_NO_COMMUNICATION, BAD_SHUTDOWN, to_db
from datafactory.contract.sample import Sample, now_us
from gateway.gaps import Restamper
from ingest.options import IngestOptions
from ingest.worker import IngestWorker
from tests.support.gateway_env import (
    CounterWriter,
    GatewayThread,
    OpcUaTestServer,
    free_port,
    generic_nodes,
    opcua_source,
    plant,
    plant_doc,
)

pytestmark = pytest.mark.integration
CELL = "press/line-1/press-01"
# A counts 1, 2, 3 … at 20 Hz; State is the machine state (default codes: 100 running, 320 planned
# maintenance); Const never changes.
NAMES = {"A": 0.0, "State": 100.0, "Const": 42.0}
GOOD_SIGNALS = {"a", "state", "const"}


def _source(endpoint: str) -> dict:
    return opcua_source(endpoint, generic_nodes(NAMES, CELL, queue_size=100), keepalive_timeout_s=5)


Row = tuple[int, float | None, int]  # time_us, value, quality (signed, as stored)


def _stored(db_url: str, enterprise: str) -> dict[str, list[Row]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT p.signal, (extract(epoch FROM s.time) * 1000000)::bigint, s.value, s.quality"
            " FROM samples s JOIN signal_paths p ON p.signal_id = s.signal_id WHERE p.enterprise = %s"
            " ORDER BY 1, 2",
            (enterprise,),
        ).fetchall()
    out: dict[str, list[Row]] = {}
    for sig, t, v, q in rows:
        out.setdefault(sig, []).append((int(t), v, int(q)))
    return out


GoodRow = tuple[int, float, int]  # a good row: only markers are stored without a value


def _good(rows: list[Row]) -> list[GoodRow]:
    good = [(t, v, q) for t, v, q in rows if q == 0 and v is not None]
    assert len(good) == sum(q == 0 for _, _, q in rows), "a sample of good quality stored without a value"
    return good


def _marks(rows: list[Row], code: int) -> list[int]:
    return [t for t, v, q in rows if q == to_db(code) and v is None]


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def _ingest(db_url: str, mqtt_url: str, enterprise: str) -> IngestWorker:
    return IngestWorker(
        IngestOptions(
            database_url=db_url, mqtt_url=mqtt_url, topic_filter=f"df/v1/{enterprise}/#", worker=f"gaps-{enterprise}"
        )
    )


def _start_gateway(config: Path, mqtt_url: str, state_dir: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "app", "gateway", "run", "--config", str(config)),
            *("--mqtt-url", mqtt_url, "--state-dir", str(state_dir)),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=os.environ | {"PYTHONPATH": str(Path.cwd())},
    )


def _counter_values(rows: list[Row]) -> list[float]:
    return [v for _, v, q in rows if q == 0 and v is not None and v > 0]


def test_restamper_records_unchanged_values_at_the_reconnect_once() -> None:
    r = Restamper()
    r.expect([("c", "old"), ("c", "new"), ("c", "late")], 1_000)
    r.connected()
    before = now_us()
    out = r.apply([("c", Sample("old", 900, 1.0)), ("c", Sample("new", 1_500, 2.0)), ("c", Sample("old", 950, 3.0))])
    assert out[0] == ("c", Sample("old", 900, 1.0))  # the source timestamp kept
    assert out[1][1].signal == "old" and out[1][1].value == 1.0 and out[1][1].time_us >= before  # and at arrival
    assert out[2:] == [("c", Sample("new", 1_500, 2.0)), ("c", Sample("old", 950, 3.0))]  # changed: once; then as is
    r.connected(window_s=0.0)  # a signal that never reports must not keep the slow path forever
    time.sleep(0.01)
    assert r.apply([("c", Sample("late", 500, 4.0))]) == [("c", Sample("late", 500, 4.0))] and r.pending == 0


def test_sigkill_and_restart_mark_the_gap_from_the_watermark(tmp_path, db_url, mqtt_url, enterprise) -> None:
    server = OpcUaTestServer(free_port(), dict(NAMES)).start()
    config = tmp_path / "plant.yaml"
    config.write_text(yaml.safe_dump(plant_doc(enterprise, sources=[_source(server.endpoint)], cells=[CELL])))
    state, log = tmp_path / "state", tmp_path / "gateway.log"
    gateway = _start_gateway(config, mqtt_url, state, log)
    try:
        with _ingest(db_url, mqtt_url, enterprise):
            assert _wait(lambda: set(_stored(db_url, enterprise)) >= GOOD_SIGNALS), log.read_text()
            with CounterWriter(server, ["A"], rate_hz=20):
                assert _wait(lambda: len(_good(_stored(db_url, enterprise).get("a", []))) > 30), log.read_text()
                killed_us = now_us()
                gateway.send_signal(signal.SIGKILL)
                gateway.wait(10)
                before = _stored(db_url, enterprise)
                # Inside the gap the machine stops for a second and runs again: the database must not say
                # "running" for that second.
                stopped_at = now_us()
                server.write("State", 320.0)
                time.sleep(1.0)
                running_at = now_us()
                server.write("State", 100.0)
                time.sleep(2.0)
                restarted_us = now_us()
                gateway = _start_gateway(config, mqtt_url, state, log)
                assert _wait(lambda: len(_good(_stored(db_url, enterprise)["const"])) >= 2), log.read_text()
                time.sleep(2.0)  # steady load after the restart
            time.sleep(1.0)  # the last writes reach the gateway with the next publish response
            gateway.send_signal(signal.SIGTERM)
            assert gateway.wait(20) == 0, log.read_text()
            assert _wait(lambda: all(_marks(r, BAD_SHUTDOWN) for r in _stored(db_url, enterprise).values()))
            after = _stored(db_url, enterprise)
    finally:
        if gateway.poll() is None:
            gateway.kill()
        server.close()

    text = log.read_text()
    assert "ended without a clean stop" in text and "Traceback" not in text
    for sig in GOOD_SIGNALS:
        gap = _marks(after[sig], BAD_NO_COMMUNICATION)
        assert len(gap) == 1, (sig, gap)  # one marker per signal, the restart's; none duplicated
        mark = gap[0]
        last_before = max(t for t, _, q in _good(before[sig]))
        # The gap starts where the durable record ends: after every sample stored before the kill, before the
        # kill, and no earlier than the watermark's granularity (timer 0.25 s, batches 0.1 s) allows.
        assert last_before < mark <= killed_us, (sig, last_before, mark, killed_us)
        assert killed_us - mark < 1_000_000, (sig, killed_us - mark)
        first_after = min(t for t, _, q in _good(after[sig]) if t > mark)
        assert first_after > restarted_us - 2_000_000 or sig == "state", (sig, first_after, restarted_us)
        # Nothing reads Good between the marker and the first value the restarted gateway delivered.
        assert not [r for r in _good(after[sig]) if mark < r[0] < first_after]

    state_rows = after["state"]
    mark = _marks(state_rows, BAD_NO_COMMUNICATION)[0]
    resumed = [r for r in _good(state_rows) if r[0] > mark]
    assert resumed[0][1] == 100.0
    # The stop happened inside [mark, resumed]: nothing claims the machine ran then.
    assert mark < stopped_at and resumed[0][0] >= running_at
    # What analytics make of it: the planned stop lies in an 'unknown' interval, never in a 'running' one.
    frame = pd.DataFrame(
        {"time": pd.to_datetime([t for t, _, _ in state_rows], unit="us", utc=True),
         "value": [math.nan if v is None else v for _, v, _ in state_rows]}
    )  # fmt: skip
    start = pd.Timestamp(state_rows[0][0], unit="us", tz="UTC")
    end = pd.Timestamp(state_rows[-1][0], unit="us", tz="UTC")
    intervals = state_intervals(frame, start, end, AnalyticsConfig())
    stop_at = pd.Timestamp(stopped_at + 500_000, unit="us", tz="UTC")  # inside the planned stop
    during = intervals[(intervals["time"] <= stop_at) & (intervals["time_end"] > stop_at)]
    assert list(during["category"]) == ["unknown"], intervals
    running = intervals[intervals["category"] == "running"]
    gap_start, gap_end = pd.Timestamp(mark, unit="us", tz="UTC"), pd.Timestamp(resumed[0][0], unit="us", tz="UTC")
    assert not ((running["time"] < gap_end) & (running["time_end"] > gap_start)).any(), intervals

    const = _good(after["const"])
    assert [v for _, v, _ in const] == [42.0, 42.0], const  # the original and the value re-read at the restart
    assert const[0][0] < mark < const[1][0] and const[1][0] >= restarted_us

    # Every counter value up to the watermark (less one publishing interval in flight) and after the restart
    # arrived; the ones written while no gateway ran are gone, as the marker says.
    values = _counter_values(after["a"])
    assert len(values) == len(set(values)), "a counter value stored twice"
    a_mark = _marks(after["a"], BAD_NO_COMMUNICATION)[0]
    before_gap = sorted(v for t, v, q in _good(after["a"]) if t < a_mark and v and v > 0)
    assert before_gap == [float(i) for i in range(1, int(before_gap[-1]) + 1)]
    after_gap = sorted(v for t, v, q in _good(after["a"]) if t > a_mark)
    assert after_gap == [float(i) for i in range(int(after_gap[0]), int(after_gap[-1]) + 1)]
    for sig in GOOD_SIGNALS:  # the clean stop at the end
        stop = _marks(after[sig], BAD_SHUTDOWN)
        assert len(stop) == 1 and stop[0] >= max(t for t, _, _ in _good(after[sig]))


def test_clean_stop_flushes_the_batcher_and_marks_the_stop(tmp_path, db_url, mqtt_url, enterprise) -> None:
    server = OpcUaTestServer(free_port(), dict(NAMES)).start()
    # Batches wait up to 30 s: at the stop, everything since the first sample is still in the batcher.
    gw = {"batch_max_ms": 30_000, "batch_max_samples": 10_000}
    cfg = plant(enterprise, sources=[_source(server.endpoint)], cells=[CELL], gateway=gw)
    try:
        with _ingest(db_url, mqtt_url, enterprise):
            with GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gt:
                assert _wait(lambda: gt.gateway.source_states().get("plc") == "connected")
                with CounterWriter(server, ["A"], rate_hz=20) as writer:
                    time.sleep(2.0)
                time.sleep(1.0)
                assert gt.gateway.buffer.depth_samples == 0 and not _stored(db_url, enterprise)  # all in memory
                stopping_us = now_us()
            stopped_us = now_us()
            written = writer.count
            assert _wait(lambda: all(_marks(r, BAD_SHUTDOWN) for r in _stored(db_url, enterprise).values()))
            assert _wait(lambda: len(_counter_values(_stored(db_url, enterprise).get("a", []))) >= written)
            first = _stored(db_url, enterprise)
            # The next start has no gap of its own to mark; the unchanged values are known again at once.
            quick = plant(enterprise, sources=[_source(server.endpoint)], cells=[CELL])
            with GatewayThread(quick, mqtt_url=mqtt_url, state_dir=tmp_path):
                assert _wait(lambda: len(_good(_stored(db_url, enterprise)["const"])) >= 2)
            assert _wait(lambda: len(_marks(_stored(db_url, enterprise)["const"], BAD_SHUTDOWN)) == 2)
            second = _stored(db_url, enterprise)
    finally:
        server.close()

    assert sorted(_counter_values(first["a"])) == [float(i) for i in range(1, written + 1)]
    for sig in GOOD_SIGNALS:
        stop = _marks(first[sig], BAD_SHUTDOWN)
        assert len(stop) == 1 and max(t for t, _, _ in _good(first[sig])) <= stop[0]
        assert stopping_us <= stop[0] <= stopped_us
        assert not _marks(second[sig], BAD_NO_COMMUNICATION)  # a clean stop leaves no crash gap
    const = second["const"]
    stop1, stop2 = _marks(const, BAD_SHUTDOWN)
    reread = [t for t, v, q in _good(const) if stop1 < t < stop2]
    assert len(reread) == 1 and [v for t, v, q in const if t == reread[0]] == [42.0]


class CuttableProxy:
    """A loopback TCP proxy in its own thread; ``cut()`` resets every connection and refuses new ones until
    ``heal()`` — what a pulled cable plus a rebooting switch look like to both ends."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._conns |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._conns -= {writer, up_writer}

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._conns):
            w.transport.abort()

    def start(self) -> CuttableProxy:
        self._call(self._listen())
        return self

    def cut(self) -> None:
        self._call(self._cut())

    def heal(self) -> None:
        self._call(self._listen())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def test_a_3_s_network_cut_is_a_3_s_gap_and_nothing_reads_unknown_after(tmp_path, db_url, mqtt_url, enterprise) -> None:
    server = OpcUaTestServer(free_port(), dict(NAMES)).start()
    proxy = CuttableProxy(server.port).start()
    endpoint = f"opc.tcp://127.0.0.1:{proxy.port}/df-test/"
    cfg = plant(enterprise, sources=[_source(endpoint)], cells=[CELL])
    try:
        with _ingest(db_url, mqtt_url, enterprise):
            with GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gt:
                assert _wait(lambda: set(_stored(db_url, enterprise)) >= GOOD_SIGNALS)
                with CounterWriter(server, ["A"], rate_hz=20):
                    time.sleep(2.0)
                    cut_us = now_us()
                    proxy.cut()
                    time.sleep(3.0)
                    proxy.heal()
                    healed_us = now_us()
                    assert _wait(lambda: gt.gateway.source_states()["plc"] == "connected")
                    time.sleep(2.0)
                time.sleep(1.0)
            assert _wait(lambda: all(_marks(r, BAD_SHUTDOWN) for r in _stored(db_url, enterprise).values()))
            rows = _stored(db_url, enterprise)
    finally:
        proxy.close()
        server.close()

    for sig in GOOD_SIGNALS:
        gap = _marks(rows[sig], BAD_NO_COMMUNICATION)
        assert len(gap) == 1, (sig, gap)
        mark = gap[0]
        assert cut_us <= mark < cut_us + 1_000_000, (sig, mark - cut_us)  # the reset is seen at once
        known = min(t for t, _, _ in _good(rows[sig]) if t > mark)  # a value at the reconnect, even if unchanged
        assert healed_us <= known, sig
        # The cut, plus at most the backoff step in which it healed (0.5 s doubling, ±20 %: ≤ 6 s in all).
        assert 2.8e6 <= known - mark <= 9e6, (sig, known - mark)
        shutdown = _marks(rows[sig], BAD_SHUTDOWN)[0]
        assert not [t for t, v, q in rows[sig] if known < t < shutdown and q != 0]  # no unknown after it

    good_a = _good(rows["a"])
    mark = _marks(rows["a"], BAD_NO_COMMUNICATION)[0]
    known = min(t for t, _, _ in good_a if t > mark)
    before = sorted(v for t, v, _ in good_a if t < mark and v)
    after = sorted(v for t, v, _ in good_a if t >= known)
    assert before == [float(i) for i in range(1, int(before[-1]) + 1)]  # nothing lost before the cut
    assert after == [float(i) for i in range(int(after[0]), int(after[-1]) + 1)]  # nor after the reconnect
    lost = after[0] - before[-1] - 1
    assert lost <= (known - mark) / 1e6 * 20 * 1.3 + 4, lost  # only the cut's changes, at 20 Hz
    const = _good(rows["const"])
    assert [v for _, v, _ in const] == [42.0, 42.0] and const[1][0] >= healed_us
