"""What the live alerting tests on the simulator share: the demo plant pointed at a simulator port, a real SMTP
server (aiosmtpd) and webhook receivers that can refuse their first attempts with HTTP 500."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import time as dtime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import yaml
from aiosmtpd.controller import Controller

from simulator.shift_calendar import ShiftCalendar, ShiftDef

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "edge_configs" / "demo-plant.yaml"
# Shifts around the clock, no breaks or days off: the machine is working whenever the test runs.
ALWAYS = ShiftCalendar(shifts=(ShiftDef("all", dtime(0, 0), 24.0, ()),), idle_weekdays=frozenset())


class Mailbox:
    """aiosmtpd handler keeping (arrival time, message)."""

    def __init__(self) -> None:
        self.got: list[tuple[float, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.got.append((time.time(), message_from_bytes(envelope.original_content)))
        return "250 OK"


def smtp_server(box: Mailbox) -> tuple[Controller, int]:
    with socket.socket() as probe:  # aiosmtpd's readiness check cannot use port 0: pick a free port first
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(box, hostname="127.0.0.1", port=port)
    smtp.start()
    return smtp, port


class Webhook:
    """A webhook receiver on a free loopback port; answers 500 to its first ``fail_first`` requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.attempts: list[tuple[float, int]] = []  # (time, HTTP status answered)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 500 if len(outer.attempts) < fail_first else 200
                outer.attempts.append((time.time(), status))
                if status == 200:
                    outer.got.append((time.time(), json.loads(body)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"


def demo_document(enterprise: str, port: int, meter_topic: str, alerting: dict[str, Any]) -> dict[str, Any]:
    doc = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    doc["enterprise"]["id"] = enterprise
    for src in doc["sources"]:
        if src["kind"] == "opcua":
            src["endpoint"] = f"opc.tcp://127.0.0.1:{port}/datafactory/sim/"
        else:
            for mapping in src["mappings"]:
                mapping["topic"] = meter_topic
    doc["alerting"] = alerting
    return doc


def registered(db_url: str, enterprise: str) -> bool:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT 1 FROM plants WHERE enterprise = %s", (enterprise,)).fetchone() is not None


def stored_state(db_url: str, enterprise: str, code: int) -> bool:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT 1 FROM samples s JOIN signal_paths p ON p.signal_id = s.signal_id WHERE p.enterprise = %s"
            " AND p.cell = 'cnc-01' AND p.meaning = 'machine_state' AND s.value = %s", (enterprise, code)
        ).fetchone() is not None
