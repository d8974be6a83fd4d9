"""The shift hand-over report on eight simulated days of the demo plant (simulator backfill, then analytics):
`datafactory report shift` writes HTML, PDF and CSV; the page opens in headless Chromium with no console error and
every chart drawn (screenshot kept under test-artifacts/shift-report/); the PDF's text carries the Chinese headings
and the numbers; the numbers equal a recomputation from the raw tables (counters and machine states in
``samples``, the hourly rows); ``--send`` delivers it to the shift's receiver once, also when asked again."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pypdf
import pytest
import yaml

from alerting.report import data
from alerting.report.cli import once
from benchmarks.dashboards import FilledPlant, fill_database
from datafactory.config.loader import validate_document
from datafactory.render import CHROMIUM_FLAGS
from simulator.layout import demo_layout
from simulator.plant_config import plant_document
from tests.test_grafana_queries import scratch_database

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "shift-report"
PLANT = "demo-precision/dongguan-1"
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed "
                                    "(.ci/run installs Debian's chromium and fonts-noto-cjk)")


@pytest.fixture(scope="module")
def filled(template_db: str) -> Iterator[tuple[FilledPlant, data.ShiftWindow, Path]]:
    with scratch_database(template_db) as url:
        plant = fill_database(url, days=8)
        cfg = validate_document(plant_document(demo_layout()))
        # The last day shift that lies wholly inside the data, and whose predecessor and week-earlier twin do too.
        window = data.last_completed(cfg, "day", plant.end)
        with psycopg.connect(url) as conn:
            (pid,) = conn.execute("SELECT id FROM plants").fetchone()  # type: ignore[misc]
            mid = window.start + (window.end - window.start) / 2
            for rule, subject, fired, acked, resolved in (
                    ("machine-down", "machining/line-1/cnc-02", mid, mid + timedelta(minutes=5),
                     mid + timedelta(minutes=40)),
                    ("pdm-alert", "machining/line-1/cnc-01/vibration", mid, mid + timedelta(minutes=9), None),
                    ("peak-demand", "plant", mid + timedelta(hours=1), None, None),
                    ("gateway-offline", "gateway:gw-1", window.start - timedelta(hours=30), None,
                     window.start - timedelta(hours=29))):  # long before the shift: not in its report
                conn.execute(
                    "INSERT INTO alert_instances (plant_id, rule_id, rule_kind, subject, severity, status, since,"
                    " fired_at, acknowledged_at, acknowledged_by, resolved_at, last_seen_at) VALUES (%s, %s, 'x', %s,"
                    " 'warning', %s, %s, %s, %s, %s, %s, %s)",
                    (pid, rule, subject, "resolved" if resolved else "acknowledged" if acked else "firing", fired,
                     fired, acked, "li.na" if acked else None, resolved, fired))
        out = ARTIFACTS
        out.mkdir(parents=True, exist_ok=True)
        yield plant, window, out


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", "report", "--database-url", url, "shift", "--plant", PLANT,
                           *args], capture_output=True, text=True, timeout=300, check=False)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def test_numbers_equal_a_recomputation_from_raw_tables(filled: tuple[FilledPlant, data.ShiftWindow, Path]) -> None:
    plant, w, out = filled
    done = _cli(plant.url, "--shift", "day", "--date", str(w.day), "--lang", "en", "--no-pdf", "--out", str(out))
    assert done.returncode == 0, done.stderr
    base = out / f"shift-demo-precision_dongguan-1-{w.day}-day-en"
    machines = {r["machine"]: r for r in _rows(Path(f"{base}-machines.csv"))}
    assert len(machines) == 8
    with psycopg.connect(plant.url) as conn:
        # Counters from raw samples: the cumulative counter's rise over the shift.
        last = "SELECT value FROM samples WHERE signal_id = sp.signal_id AND time < %({})s ORDER BY time DESC LIMIT 1"
        counted: dict[str, float] = dict(conn.execute(
            f"""SELECT sp.area || '/' || sp.line || '/' || sp.cell, ({last.format('e')}) - ({last.format('s')})
               FROM signal_paths sp WHERE sp.meaning = 'good_count'""", {"s": w.start, "e": w.end}).fetchall())
        # Availability from the hourly rows of the same twelve hours (a different roll-up path than the shift rows).
        hourly = {r[0]: r[1:] for r in conn.execute(
            """SELECT c.area || '/' || c.line || '/' || c.cell, sum(apt_s) / sum(pbt_s),
                      sum(ideal_production_s) / sum(apt_s), sum(good_count) / sum(total_count), sum(reject_count),
                      sum(adot_s), sum(asut_s), sum(adet_s)
               FROM oee o JOIN cells c ON c.id = o.cell_id WHERE o.period = 'hour' AND o.time >= %s
               AND o.time_end <= %s GROUP BY 1""", (w.start, w.end)).fetchall()}
        down: dict[str, float] = dict(conn.execute(
            """SELECT reason, sum(extract(epoch FROM least(time_end, %(e)s) - greatest(time, %(s)s)))::float8
               FROM state_intervals WHERE time < %(e)s AND time_end > %(s)s
               AND time_element IN ('adot', 'asut', 'adet') GROUP BY reason""", {"s": w.start, "e": w.end}).fetchall())
        kwh = conn.execute("SELECT sum(kwh) FROM energy_plant WHERE period = 'hour' AND time >= %s AND time_end <= %s",
                           (w.start, w.end)).fetchone()[0]  # type: ignore[index]
    for m, r in machines.items():
        assert float(r["good"]) == pytest.approx(counted[m], abs=0.5), m
        a, p, q, scrap, adot, asut, adet = hourly[m]
        assert float(r["availability"]) == pytest.approx(a, abs=1e-6), m
        assert float(r["performance"]) == pytest.approx(p, abs=1e-6), m
        assert float(r["quality"]) == pytest.approx(q, abs=1e-6), m
        assert float(r["oee"]) == pytest.approx(a * p * q, abs=1e-6), m
        assert float(r["scrap"]) == pytest.approx(scrap, abs=1e-6), m
        for column, seconds in (("unplanned_down_s", adot), ("setup_s", asut), ("delay_s", adet)):  # the losses
            assert float(r[column]) == pytest.approx(seconds, abs=1e-3), (m, column)
    pareto = _rows(Path(f"{base}-downtime.csv"))
    assert pareto and [float(d["seconds"]) for d in pareto] == sorted((float(d["seconds"]) for d in pareto),
                                                                      reverse=True)
    for d in pareto:
        assert float(d["seconds"]) == pytest.approx(down[d["reason"]], rel=1e-6), d
    assert float(pareto[-1]["cumulative"]) == pytest.approx(1.0)
    energy = _rows(Path(f"{base}-energy.csv"))[0]
    assert float(energy["kwh"]) == pytest.approx(kwh, rel=1e-6)
    plant_rows = {r["shift"]: r for r in _rows(Path(f"{base}-plant.csv"))}
    assert set(plant_rows) == {"this", "previous", "last_week"}
    alerts = {r["rule"]: r["state"] for r in _rows(Path(f"{base}-alerts.csv"))}
    assert alerts == {"machine-down": "resolved", "pdm-alert": "acknowledged", "peak-demand": "open"}


@needs_chromium
def test_opens_in_chromium_with_every_chart_drawn_and_prints(filled: tuple[FilledPlant, data.ShiftWindow, Path],
                                                             tmp_path: Path) -> None:
    plant, w, out = filled
    done = _cli(plant.url, "--shift", "day", "--date", str(w.day), "--lang", "zh", "--out", str(out))
    assert done.returncode == 0, done.stderr
    html = out / f"shift-demo-precision_dongguan-1-{w.day}-day-zh.html"
    url = html.resolve().as_uri()

    def browser(*args: str, profile: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / profile}", *args],
                              capture_output=True, text=True, timeout=180, check=False)

    dump = browser("--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", url,
                   profile="p1")
    assert dump.returncode == 0, dump.stderr[-2000:]
    console = [line for line in dump.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    assert 'data-ready="yes"' in dump.stdout  # the page's script ran to its end
    charts = re.findall(r'<svg class="chart"[^>]*>', dump.stdout)
    assert len(charts) == 3  # plant OEE against the previous shifts, OEE per machine, downtime Pareto
    for tag in charts:
        marks = int(re.search(r'data-marks="(\d+)"', tag)[1])  # type: ignore[index]
        drawn = int(re.search(r'data-drawn="(\d+)"', tag)[1])  # type: ignore[index]
        assert marks > 0 and drawn == marks, tag
    shot = out / f"shift-{w.day}-day-zh.png"
    done = browser("--window-size=900,2600", "--hide-scrollbars", f"--screenshot={shot}", url, profile="p2")
    assert done.returncode == 0 and shot.stat().st_size > 10_000

    pdf = html.with_suffix(".pdf")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(pdf).pages)
    for heading in ("交接班报告", "全厂 OEE", "各设备 OEE", "主要停机原因", "本班告警", "单位良品电耗"):
        assert heading in text, heading
    machines = _rows(out / f"shift-demo-precision_dongguan-1-{w.day}-day-zh-machines.csv")
    for r in machines:
        assert r["machine"] in text and f"{float(r['oee']) * 100:.1f}%" in text, r["machine"]
    assert "\ufffd" not in text


class _Hook(BaseHTTPRequestHandler):
    got: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).got.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_sent_to_the_shift_receiver_once(filled: tuple[FilledPlant, data.ShiftWindow, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    plant, w, _ = filled
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DF_TEST_SHIFT_HOOK", f"json://127.0.0.1:{server.server_address[1]}/shift")
    doc = plant_document(demo_layout())
    doc["alerting"] = {"receivers": [{"id": "shift-lead", "kind": "webhook", "url_env": "DF_TEST_SHIFT_HOOK",
                                      "language": "en"}],
                       "shift_reports": [{"shift": "day", "receivers": ["shift-lead"]}]}
    cfg = tmp_path / f"plant-{uuid.uuid4().hex[:6]}.yaml"
    cfg.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    try:
        made = once(plant.url, PLANT, "day", w.day, tmp_path, None, pdf=False, deliver=True, configs=[cfg],
                    only_new=True)
        assert made is not None and made[1] == 1 and set(made[0]) == {"en"}
        assert len(_Hook.got) == 1 and "Shift report" in _Hook.got[0]["title"] and str(w.day) in _Hook.got[0]["title"]
        plant_oee = _rows(next(p for p in made[0]["en"] if p.name.endswith("-plant.csv")))[0]
        message = _Hook.got[0]["message"]  # the numbers a chat preview shows, as in the report
        assert f"OEE {float(plant_oee['oee']) * 100:.1f}%" in message and "Open alerts: 2" in message
        # Asked again (as --every does each interval): already reported, nothing made or sent.
        assert once(plant.url, PLANT, "day", w.day, tmp_path, None, pdf=False, deliver=True, configs=[cfg],
                    only_new=True) is None
        assert len(_Hook.got) == 1
    finally:
        server.shutdown()


def test_unknown_shift_and_missing_data_are_one_line_errors(filled: tuple[FilledPlant, data.ShiftWindow, Path]
                                                            ) -> None:
    plant, w, out = filled
    done = _cli(plant.url, "--shift", "evening", "--no-pdf", "--out", str(out))
    assert done.returncode != 0 and "no shift 'evening'" in done.stderr and "Traceback" not in done.stderr
    done = _cli(plant.url, "--shift", "day", "--date", str(w.day - timedelta(days=60)), "--no-pdf", "--out", str(out))
    assert done.returncode == 1 and "no OEE for shift day" in done.stderr and "Traceback" not in done.stderr
    assert datetime.now(UTC) > w.end
