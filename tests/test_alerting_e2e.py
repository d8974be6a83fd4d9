"""End to end: a planted breakdown on the simulated demo plant fires 'machine down', is delivered once to a real
SMTP server (aiosmtpd) and once to real webhook receivers (http.server), survives a service restart without
re-sending, repeats only after the repeat interval, is acknowledged, and resolves when the machine runs again.
A receiver that fails twice is retried until it accepts. Real PostgreSQL, real sockets on 127.0.0.1, no mocks.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from aiosmtpd.controller import Controller

from alerting import engine
from alerting.service import AlertService
from datafactory.config.loader import validate_document
from datafactory.db.registry import register_config
from simulator.layout import demo_layout
from simulator.plant_config import plant_document

FOR_S, EVERY, REPEAT_S = 2.0, 0.5, 6.0
MACHINE = "machining/line-1/cnc-01"


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"


def _hook_server(fail_first: int) -> tuple[ThreadingHTTPServer, list[dict[str, Any]], list[int]]:
    received: list[dict[str, Any]] = []
    attempts = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            attempts[0] += 1
            if attempts[0] <= fail_first:
                self.send_response(500)
                self.end_headers()
                return
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received, attempts


@pytest.fixture
def receivers() -> Iterator[dict[str, Any]]:
    box = _Mailbox()
    with socket.socket() as probe:  # aiosmtpd's readiness check cannot use port 0: pick a free port first
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(box, hostname="127.0.0.1", port=port)
    smtp.start()
    hook, hook_got, _ = _hook_server(0)
    flaky, flaky_got, flaky_attempts = _hook_server(2)
    env = {
        "DF_TEST_MAIL_URL": f"mailto://127.0.0.1:{port}?from=alerts@plant.example&to=eng@plant.example&mode=insecure",
        "DF_TEST_HOOK_URL": f"json://127.0.0.1:{hook.server_address[1]}/hook",
        "DF_TEST_FLAKY_URL": f"json://127.0.0.1:{flaky.server_address[1]}/hook",
    }
    yield {"env": env, "mail": box.messages, "hook": hook_got, "flaky": flaky_got, "flaky_attempts": flaky_attempts}
    smtp.stop()
    hook.shutdown()
    flaky.shutdown()


def _config(tmp_path: Path) -> Path:
    doc = plant_document(demo_layout())
    doc["alerting"] = {
        "rules": [{"id": "machine-down", "kind": "machine_down", "severity": "critical", "for_s": FOR_S}],
        "receivers": [
            {"id": "mail", "kind": "email", "url_env": "DF_TEST_MAIL_URL", "language": "en"},
            {"id": "wecom-bridge", "kind": "webhook", "url_env": "DF_TEST_HOOK_URL", "language": "zh"},
            {"id": "flaky", "kind": "webhook", "url_env": "DF_TEST_FLAKY_URL", "language": "en"},
        ],
        "policy": {"receivers": ["mail", "wecom-bridge", "flaky"], "repeat_interval_s": REPEAT_S},
    }
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _state(url: str, signal_id: int, at: datetime, code: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO samples (time, signal_id, value) VALUES (%s, %s, %s)", (at, signal_id, code))


def _wait(predicate: Any, timeout: float) -> float:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.05)
    return time.monotonic() - t0


def _start(url: str, cfg: Path, env: dict[str, str]) -> tuple[AlertService, threading.Thread]:
    svc = AlertService(url, [cfg], env=env, retry_base_s=0.3)
    thread = threading.Thread(target=svc.run, args=(EVERY,), daemon=True)
    thread.start()
    return svc, thread


def _stop(svc: AlertService, thread: threading.Thread) -> None:
    svc.stop_event.set()
    thread.join(10)
    assert not thread.is_alive()


def _subject(msg: Any) -> str:
    return str(make_header(decode_header(msg["Subject"])))


def test_planted_breakdown_is_told_once_repeated_acknowledged_and_resolved(
        db_url: str, tmp_path: Path, receivers: dict[str, Any]) -> None:
    cfg_path = _config(tmp_path)
    cfg = validate_document(yaml.safe_load(cfg_path.read_text(encoding="utf-8")))
    with psycopg.connect(db_url) as conn:
        ids = register_config(conn, cfg)
    state = ids[f"{MACHINE}/state"]
    other = ids["machining/line-1/cnc-02/state"]
    now = datetime.now(UTC)
    _state(db_url, state, now - timedelta(minutes=30), 100)
    _state(db_url, other, now - timedelta(minutes=30), 100)
    _state(db_url, other, now - timedelta(minutes=5), 300)  # a planned break is not "down"
    svc, thread = _start(db_url, cfg_path, receivers["env"])
    time.sleep(1.5)
    assert receivers["mail"] == [] and receivers["hook"] == []  # everything running: nothing to tell

    down_at = datetime.now(UTC)
    _state(db_url, state, down_at, 510)  # the planted breakdown: mechanical failure
    t0 = time.monotonic()
    _wait(lambda: receivers["mail"] and receivers["hook"], FOR_S + EVERY + 8)
    # Fired no earlier than the rule's delay, and within delay + one evaluation interval (+ delivery time).
    with psycopg.connect(db_url) as conn:
        fired = conn.execute(
            "SELECT fired_at, since, status FROM alert_instances WHERE rule_id = 'machine-down'").fetchone()
    assert fired is not None, "the notifications went out, so the rule's alert instance is stored"
    fired_at, since, status = fired
    assert status == "firing"
    assert since == down_at  # the data time of the stop, not the time the service noticed it
    assert FOR_S <= (fired_at - down_at).total_seconds() <= FOR_S + EVERY + 0.5
    mail = receivers["mail"][0]
    assert "Machine down" in _subject(mail) and MACHINE in _subject(mail)
    text = next(p.get_payload(decode=True).decode() for p in mail.walk() if p.get_content_type() == "text/plain")
    assert "mechanical failure" in text and "df-machine-detail" in text and "demo-precision/dongguan-1" in text
    hook = receivers["hook"][0]
    assert "设备停机" in hook["title"] and MACHINE in hook["title"] and "mechanical failure" in hook["message"]

    # Restart the service before the repeat interval: the new one neither re-sends nor loses the alert.
    _stop(svc, thread)
    svc, thread = _start(db_url, cfg_path, receivers["env"])
    time.sleep(2.0)
    assert len(receivers["mail"]) == 1 and len(receivers["hook"]) == 1
    # The flaky receiver failed twice and was retried until it accepted the one message.
    _wait(lambda: receivers["flaky"], 30)  # backoff 0.3, 0.6 s: seconds, but more on a loaded box
    assert receivers["flaky_attempts"][0] == 3 and len(receivers["flaky"]) == 1
    with psycopg.connect(db_url) as conn:
        outbox = conn.execute("SELECT attempts, last_error FROM alert_outbox WHERE receiver = 'flaky'"
                              " AND event = 'firing'").fetchone()
    assert outbox is not None, "the firing message to the flaky receiver is in the outbox"
    attempts, err = outbox
    assert attempts == 3 and err  # the failure was recorded, not hidden

    # The repeat comes after the repeat interval, not before.
    _wait(lambda: len(receivers["mail"]) == 2 and len(receivers["hook"]) == 2, REPEAT_S + 3)
    assert time.monotonic() - t0 >= REPEAT_S
    assert "still active" in _subject(receivers["mail"][1])
    assert len(receivers["hook"]) == 2 and "仍未恢复" in receivers["hook"][1]["title"]

    with psycopg.connect(db_url) as conn:
        firing = conn.execute("SELECT id FROM alert_instances WHERE status = 'firing'").fetchone()
        assert firing is not None, "the alert is still firing before it is acknowledged"
        (iid,) = firing
        assert engine.acknowledge(conn, iid, "zhang.wei", datetime.now(UTC))
    time.sleep(REPEAT_S + 1)
    assert len(receivers["mail"]) == 2 and len(receivers["hook"]) == 2  # acknowledged: no more repeats

    _state(db_url, state, datetime.now(UTC), 100)  # repaired, running again
    _wait(lambda: len(receivers["mail"]) == 3, 30)  # the next round (every 0.5 s) and delivery; slack for load
    assert "RESOLVED" in _subject(receivers["mail"][2])
    _wait(lambda: len(receivers["hook"]) == 3, 30)
    assert "已恢复" in receivers["hook"][2]["title"]
    _stop(svc, thread)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT status, acknowledged_by, resolved_at IS NOT NULL FROM alert_instances").fetchall()
        pending = conn.execute("SELECT count(*) FROM alert_outbox WHERE status <> 'sent'").fetchone()
    assert rows == [("resolved", "zhang.wei", True)]  # one episode: de-duplicated across rounds and the restart
    assert pending == (0,)
