"""Writing a shift report: HTML, a PDF printed by headless Chromium, and CSV files of the same tables."""

from __future__ import annotations

import csv
from pathlib import Path

from alerting.report.data import Report, ReportError, alert_state
from alerting.report.html import render
from datafactory.render import print_pdf


def base_name(r: Report, lang: str) -> str:
    return f"shift-{r.plant_label.replace('/', '_')}-{r.window.day}-{r.window.name}-{lang}"


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    # UTF-8 with BOM: Excel, which most plants open these with, then reads Chinese text correctly.
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_csv(r: Report, out: Path, name: str) -> list[Path]:
    def f(v: float | None) -> object:
        return "" if v is None else round(v, 6)

    machines = [[m.line, m.machine, m.name, f(m.oee.availability), f(m.oee.performance), f(m.oee.quality),
                 f(m.oee.oee), m.oee.good, m.oee.reject, m.oee.total, m.oee.stops, m.oee.adot_s, m.oee.asut_s,
                 m.oee.adet_s, m.oee.unknown_s]
                for m in r.machines]
    lines = [[line, f(o.availability), f(o.performance), f(o.quality), f(o.oee)] for line, o in r.lines.items()]
    compare = [[k, f(o.availability), f(o.performance), f(o.quality), f(o.oee)]
               for k, o in (("this", r.plant), ("previous", r.previous), ("last_week", r.last_week)) if o]
    return [
        _csv(out / f"{name}-machines.csv", ["line", "machine", "name", "availability", "performance", "quality", "oee",
                                            "good", "scrap", "total", "stops", "unplanned_down_s", "setup_s",
                                            "delay_s", "no_data_s"],
             machines),
        _csv(out / f"{name}-lines.csv", ["line", "availability", "performance", "quality", "oee"], lines),
        _csv(out / f"{name}-plant.csv", ["shift", "availability", "performance", "quality", "oee"], compare),
        _csv(out / f"{name}-downtime.csv", ["reason", "category", "seconds", "stops", "share", "cumulative"],
             [[d["reason"], d["category"], d["seconds"], d["stops"], f(d["share"]), f(d["cumulative"])]
              for d in r.downtime]),
        _csv(out / f"{name}-energy.csv", list(r.energy), [[f(v) for v in r.energy.values()]]),
        _csv(out / f"{name}-alerts.csv", ["id", "rule", "subject", "severity", "fired_at", "state", "acknowledged_by",
                                          "resolved_at"],
             [[a["id"], a["rule"], a["subject"], a["severity"], a["fired_at"].isoformat(), alert_state(a, r.window),
               a["acknowledged_by"] or "", a["resolved_at"].isoformat() if a["resolved_at"] else ""]
              for a in r.alerts]),
    ]


def write(r: Report, out: Path, lang: str, *, pdf: bool = True) -> list[Path]:
    """HTML (+ PDF) and the CSV files; returns the paths, the HTML first and the PDF second when printed."""
    out.mkdir(parents=True, exist_ok=True)
    name = base_name(r, lang)
    html = out / f"{name}.html"
    html.write_text(render(r, lang), encoding="utf-8")
    files = [html]
    if pdf:
        print_pdf(html, out / f"{name}.pdf", error=ReportError)
        files.append(out / f"{name}.pdf")
    return files + write_csv(r, out, name)
