"""A short breakdown planted in the live simulator goes through the whole alert lifecycle, end to end:
simulator (OPC-UA server, real time) → gateway → Mosquitto → ingest → PostgreSQL → ``alerts run`` → a real SMTP
server (aiosmtpd), a webhook receiver and a webhook receiver that answers HTTP 500 to its first two attempts.

In one run: the planted stop (ground truth 'planted_breakdown', cnc-01 down for BREAK_S seconds) fires within the
rule's delay plus one evaluation interval of being stored; it is told once to each receiver, the failing one is
retried until it accepts; the service is restarted (the retry still pending) and neither re-sends nor loses
anything; it repeats only after the repeat interval; an operator acknowledges it with ``datafactory alerts ack``
and no repeat follows although one falls due; it resolves when the machine runs again and whoever was told is told
that. Latencies go to test-artifacts/alerting/lifecycle-latency.json and are printed as a JSON line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from alerting.service import AlertService
from datafactory.config.loader import validate_document
from gateway.runner import Gateway
from ingest.options import IngestOptions
from ingest.worker import IngestWorker
from simulator import PlantModel, SimOptions
from simulator.plant_config import layout_from_config
from simulator.server import SimulatorServer, free_port
from simulator.states import DOWN_CODES
from tests.support.sim_alerting import ALWAYS, Mailbox, Webhook, demo_document, registered, smtp_server, stored_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "alerting"
CELL = "machining/line-1/cnc-01"
FOR_S, EVERY, REPEAT_S, RETRY_S = 2.0, 0.5, 5.0, 1.0
LEAD_S, BREAK_AT_S, BREAK_S = 10.0, 4.0, 18.0
RUN_S = BREAK_AT_S + BREAK_S + 8.0


class _Run:
    def __init__(self) -> None:
        self.box = Mailbox()
        self.hook = Webhook()
        self.flaky = Webhook(fail_first=2)
        self.marks: dict[str, float] = {}
        self.svc: AlertService | None = None
        self.thread: threading.Thread | None = None


def _events(got: list[tuple[float, Any]], mail: bool) -> list[tuple[float, str]]:
    """(arrival, title) of each message a receiver accepted."""
    from email.header import decode_header, make_header

    return [(t, str(make_header(decode_header(m["Subject"]))) if mail else m["title"]) for t, m in got]


def test_short_planted_breakdown_fires_repeats_is_acknowledged_and_resolves(
        db_url: str, mqtt_url: str, enterprise: str, tmp_path: Path) -> None:
    t_test = time.monotonic()
    port = free_port()
    meter_topic = f"{enterprise}/meter/utilities/main-meter"
    run = _Run()
    smtp, smtp_port = smtp_server(run.box)
    doc = demo_document(enterprise, port, meter_topic, {
        "rules": [{"id": "machine-down", "kind": "machine_down", "severity": "critical", "for_s": FOR_S,
                   "cells": [CELL]}],
        "receivers": [{"id": "mail", "kind": "email", "url_env": "DF_LC_MAIL", "language": "en"},
                      {"id": "hook", "kind": "webhook", "url_env": "DF_LC_HOOK", "language": "zh"},
                      {"id": "flaky", "kind": "webhook", "url_env": "DF_LC_FLAKY", "language": "en"}],
        "policy": {"receivers": ["mail", "hook", "flaky"], "repeat_interval_s": REPEAT_S},
    })
    cfg_path = tmp_path / "plant.yaml"
    cfg_path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    cfg = validate_document(doc, str(cfg_path))
    env = {"DF_LC_MAIL": f"mailto://127.0.0.1:{smtp_port}?from=alerts@plant.example&to=eng@plant.example"
                         "&mode=insecure", "DF_LC_HOOK": run.hook.url, "DF_LC_FLAKY": run.flaky.url}
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=LEAD_S)
    options = SimOptions(seed=3, calendar=replace(ALWAYS, timezone=cfg.enterprise.timezone), breakdown_cell=CELL,
                         breakdown_at=start + timedelta(seconds=BREAK_AT_S), breakdown_s=BREAK_S)
    model = PlantModel(layout_from_config(cfg), options, start=start, end=start + timedelta(seconds=RUN_S))
    server = SimulatorServer(model, port=port, speed=1.0, mqtt_url=mqtt_url, meter_topic=meter_topic, autoplay=False)
    ingest = IngestOptions(database_url=db_url, mqtt_url=mqtt_url, topic_filter=f"df/v1/{enterprise}/#",
                           worker=f"e2e-lifecycle-{enterprise}")
    try:
        with IngestWorker(ingest):
            asyncio.run(_drive(run, server, Gateway(cfg, mqtt_url=mqtt_url, state_dir=tmp_path), db_url,
                               enterprise, cfg_path, env, start))
    finally:
        smtp.stop()
        run.hook.server.shutdown()
        run.flaky.server.shutdown()
    _check(run, model, db_url, start, time.monotonic() - t_test)


async def _drive(run: _Run, server: SimulatorServer, gateway: Gateway, db_url: str, enterprise: str,  # noqa: PLR0917
                 cfg_path: Path, env: dict[str, str], start: datetime) -> None:
    await server.start()
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    marks = run.marks
    t0 = start.timestamp() + BREAK_AT_S  # speed 1: simulated time is wall time

    def launch() -> None:
        run.svc = AlertService(db_url, [cfg_path], env=env, retry_base_s=RETRY_S)
        run.thread = threading.Thread(target=run.svc.run, args=(EVERY,), daemon=True)
        run.thread.start()

    def halt() -> None:
        if run.svc is not None and run.thread is not None:
            run.svc.stop_event.set()
            run.thread.join(15)
            assert not run.thread.is_alive(), "the alert service did not stop"

    async def until(what: str, predicate: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if "stored" not in marks and time.time() > t0 and stored_state(db_url, enterprise, 510):
                marks["stored"] = time.time()
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)
        marks[what] = time.time()

    try:
        while not all(s == "connected" for s in gateway.source_states().values()):
            assert time.time() < start.timestamp() - 1, f"sources not connected: {gateway.source_states()}"
            await asyncio.sleep(0.2)
        await asyncio.sleep(max(0.0, start.timestamp() - time.time()))
        marks["play"] = time.time()
        server.play()
        await until("registered", lambda: registered(db_url, enterprise), 20)
        launch()
        await until("told", lambda: run.box.got and run.hook.got and run.flaky.attempts, BREAK_AT_S + 25)
        # Restart while the failing receiver's retry is still pending: the new service must deliver it.
        halt()
        marks["old_stopped"] = time.time()
        assert not run.flaky.got, "the failing receiver accepted before the restart: the back-off is too short"
        await asyncio.sleep(EVERY * 2)
        launch()
        await until("repeat", lambda: len(run.box.got) >= 2 and len(run.hook.got) >= 2, REPEAT_S + 15)
        iid = _alert_id(db_url)
        # The operator's way: the CLI, in its own process, against the same database.
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "app", "alerts", "--database-url", db_url, "ack", str(iid),
                             "--by", "zhang.wei"], cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        assert f"alert {iid} acknowledged by zhang.wei" in done.stdout
        marks["acked"] = time.time()
        await until("resolved", lambda: _status(db_url) == "resolved", BREAK_S + 20)
        # Whoever was told is told it is over (the failing receiver accepts by now).
        await until("resolution told", lambda: all(any(_is_resolution(t) for _, t in _events(got, mail)) for got, mail
                                                   in ((run.box.got, True), (run.hook.got, False),
                                                       (run.flaky.got, False))), 15)
        await asyncio.sleep(2 * EVERY + 0.5)  # a few more rounds: nothing more
    finally:
        halt()
        stop.set()
        await asyncio.wait_for(task, 30)
        await server.stop()


def _alert_id(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT id FROM alert_instances WHERE rule_id = 'machine-down'").fetchone()
    assert row is not None
    return int(row[0])


def _status(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT status FROM alert_instances WHERE rule_id = 'machine-down'").fetchone()
    return str(row[0]) if row else ""


def _is_resolution(title: str) -> bool:
    return "] RESOLVED: " in title or "】已恢复：" in title


def _check(run: _Run, model: PlantModel, db_url: str, start: datetime, took_s: float) -> None:
    truth = model.truth()
    planted = next(e for e in truth.events if e.kind == "planted_breakdown" and e.cell_path == CELL)
    t0, t1 = planted.time_us / 1e6, planted.details["end_us"] / 1e6
    assert t0 == start.timestamp() + BREAK_AT_S and t1 - t0 == BREAK_S  # planted where asked, for as long
    # The planted stop is the machine's only one in the run: what the receivers got is about it and nothing else.
    downs = [s for s in truth.states if s.cell_path == CELL and s.state_code in DOWN_CODES]
    assert [(s.start_us, s.end_us) for s in downs] == [(planted.time_us, planted.details["end_us"])]
    marks = run.marks
    assert abs(marks["play"] - start.timestamp()) < 0.5  # simulated time is wall time
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT id, status, since, fired_at, acknowledged_at, acknowledged_by, resolved_at, last_notified_at,"
            " notify_count FROM alert_instances WHERE rule_id = 'machine-down'").fetchall()
        assert len(rows) == 1, rows  # one episode: de-duplicated across rounds and the restart
        iid, status, since, fired_at, acked_at, acked_by, resolved_at, last_notified, notify_count = rows[0]
        outbox = conn.execute("SELECT receiver, event, status, attempts, last_error, created_at FROM alert_outbox"
                              " WHERE instance_id = %s ORDER BY id", (iid,)).fetchall()
    assert status == "resolved" and acked_by == "zhang.wei" and since.timestamp() == t0
    # Fired after the rule's delay, within one evaluation interval of it holding and being stored (+ a round).
    assert fired_at.timestamp() >= t0 + FOR_S
    assert fired_at.timestamp() <= max(t0 + FOR_S, marks["stored"]) + EVERY + 1.5
    # Told: firing once, one repeat (after the repeat interval), then acknowledged: no more repeats although the
    # next one fell due before the machine ran again; resolved; to each receiver.
    by_receiver: dict[str, list[tuple[str, str]]] = {}
    for receiver, event, row_status, _attempts, _err, _created in outbox:
        by_receiver.setdefault(receiver, []).append((event, row_status))
    assert by_receiver == {r: [("firing", "sent"), ("repeat", "sent"), ("resolved", "sent")]
                           for r in ("mail", "hook", "flaky")}, by_receiver
    assert notify_count == 2
    created = {(r, e): c for r, e, _s, _a, _err, c in outbox}
    repeat_gap = (created[("mail", "repeat")] - created[("mail", "firing")]).total_seconds()
    assert REPEAT_S <= repeat_gap <= REPEAT_S + EVERY + 1.5
    assert acked_at.timestamp() < last_notified.timestamp() + REPEAT_S  # acknowledged before the next repeat…
    assert resolved_at.timestamp() - last_notified.timestamp() > REPEAT_S + EVERY  # …which fell due, unsent
    assert t1 <= resolved_at.timestamp() <= t1 + 10  # resolved once the machine runs again (ingest + a round)
    mail, hook, flaky = _events(run.box.got, True), _events(run.hook.got, False), _events(run.flaky.got, False)
    assert len(mail) == len(hook) == len(flaky) == 3  # the receivers' side: exactly what the outbox says
    assert CELL in mail[0][1] and "设备停机" in hook[0][1] and CELL in flaky[0][1]
    assert "] still active: " in mail[1][1] and "】仍未恢复：" in hook[1][1]
    assert all(_is_resolution(t) for _, t in (mail[2], hook[2], flaky[2]))
    # The restart re-sent nothing (counts above) and lost nothing: the failing receiver, refused twice with
    # HTTP 500, got the firing from the restarted service.
    flaky_firing = next(o for o in outbox if o[0] == "flaky" and o[1] == "firing")
    assert flaky_firing[3] == 3 and "500" in (flaky_firing[4] or "")
    assert [s for _, s in run.flaky.attempts[:3]] == [500, 500, 200]
    assert flaky[0][0] > marks["old_stopped"]
    latency = {
        "planted_to_stored_s": round(marks["stored"] - t0, 2),
        "planted_to_fired_s": round(fired_at.timestamp() - t0, 2),
        "planted_to_mail_s": round(mail[0][0] - t0, 2),
        "planted_to_webhook_s": round(hook[0][0] - t0, 2),
        "planted_to_failing_webhook_s": round(flaky[0][0] - t0, 2),
        "firing_to_repeat_s": round(repeat_gap, 2),
        "running_again_to_resolved_s": round(resolved_at.timestamp() - t1, 2),
        "running_again_to_resolution_mail_s": round(mail[2][0] - t1, 2),
        "for_s": FOR_S, "every_s": EVERY, "repeat_interval_s": REPEAT_S, "test_s": round(took_s, 1),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "lifecycle-latency.json").write_text(json.dumps(latency) + "\n", encoding="utf-8")
    print(json.dumps(latency))
