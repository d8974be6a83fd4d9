"""``datafactory opendata export``: de-identified open data for a month or quarter, as CSV + JSON + metadata.

Two kinds of resource:

* **Statistical tables** (by industry division, town, park, size class, ownership; early warnings) read as the
  ``bureau`` role from the disclosure-controlled ``bureau_v_*`` views only. A suppressed cell is exported with
  empty magnitudes and ``suppressed = true`` — never a number.
* **Enterprise directory**: one row per reporting enterprise with a keyed per-release pseudonym instead of its
  identity, and town / division / size class / output band / employment band under k-anonymity on all five
  (never exact values). See ``bureau.opendata.deid`` for why the pseudonyms change with every release.

Every export is recorded in the audit trail and in ``opendata_exports``, with the files' row counts, SHA-256
and the pseudonym key id. Files: ``<resource>.csv``, ``<resource>.json`` and ``metadata.json``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from bureau.bulletin.data import as_bureau_role
from bureau.bulletin.period import Period
from bureau.opendata.deid import (
    EMPLOYMENT_BANDS,
    OUTPUT_BANDS,
    QUASI_IDENTIFIERS,
    PseudonymKey,
    band,
    k_anonymise,
    smallest_class,
)
from bureau.statistics.facts import enterprise_frame
from datafactory.db import audit

LICENCE = {"name": "CC-BY-4.0", "title": "Creative Commons Attribution 4.0", "path":
           "https://creativecommons.org/licenses/by/4.0/"}
MEASURES = ("enterprises", "output_value", "output_ytd", "sales_value", "revenue", "employment", "energy_tce",
            "electricity_kwh", "yoy_growth", "ytd_growth", "electricity_index", "energy_intensity", "suppressed")
# resource -> (view, key columns, extra filter)
TABLES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "by_division": ("bureau_v_industry", ("division", "division_name"), "level IN ('city', 'division')"),
    "by_town": ("bureau_v_town", ("town",), "true"),
    "by_park": ("bureau_v_park", ("park",), "true"),
    "by_size": ("bureau_v_size", ("size_class",), "true"),
    "by_ownership": ("bureau_v_ownership", ("ownership",), "true"),
}
DESCRIPTIONS = {
    "month": "month (first day), city time", "enterprises": "number of reporting enterprises in the cell",
    "output_value": "gross industrial output, 10,000 yuan", "output_ytd": "output January to month, 10,000 yuan",
    "sales_value": "industrial sales value, 10,000 yuan", "revenue": "main business revenue, 10,000 yuan",
    "employment": "persons employed", "energy_tce": "energy consumption, tonnes of coal equivalent",
    "electricity_kwh": "electricity, kWh", "yoy_growth": "same-scope year-on-year growth of output, fraction",
    "ytd_growth": "same-scope year-to-date growth of output, fraction",
    "electricity_index": "same-scope electricity, same month a year earlier = 100",
    "energy_intensity": "tce per 10,000 yuan of output",
    "suppressed": "true when the cell's magnitudes are withheld by disclosure control (they are empty)",
}


@dataclass
class ExportResult:
    out: Path
    key_id: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    withheld: int = 0           # enterprise rows withheld by k-anonymity
    smallest_class: int = 0


def _as_bureau(conn: psycopg.Connection, view: str, keys: tuple[str, ...], where: str, period: Period
               ) -> pd.DataFrame:
    """Read one view as the bureau role: nothing here can see more than the published cells."""
    columns = ", ".join(("month", *keys, *MEASURES))
    with as_bureau_role(conn):
        rows = conn.execute(f"SELECT {columns} FROM {view} WHERE {where} AND month = ANY(%s) ORDER BY 1, 2",
                            (list(period.months),)).fetchall()
    return pd.DataFrame(rows, columns=["month", *keys, *MEASURES])


def _warnings(conn: psycopg.Connection, period: Period) -> pd.DataFrame:
    columns = ("month", "scope_kind", "scope", "measure", "actual", "expected", "shortfall", "yoy_growth")
    with as_bureau_role(conn):
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM bureau_v_early_warnings WHERE month = ANY(%s)"
                            " ORDER BY month, shortfall", (list(period.months),)).fetchall()
    return pd.DataFrame(rows, columns=list(columns))


def enterprise_directory(conn: psycopg.Connection, period: Period, key: PseudonymKey, k: int
                         ) -> tuple[pd.DataFrame, int]:
    """Pseudonymised, banded, k-anonymous rows of the enterprises that reported in the period's last month."""
    frames = [enterprise_frame(conn, month) for month in period.months]
    last = frames[-1]
    totals = pd.concat(frames).groupby("enterprise_id")[["output_value"]].sum()
    codes: dict[int, str] = dict(conn.execute("SELECT id, credit_code FROM bureau_enterprises").fetchall())
    rows = pd.DataFrame({
        "pseudonym": [key.pseudonym(period.label, codes[e]) for e in last["enterprise_id"]],
        "town": last["town"].to_numpy(), "division": last["division"].to_numpy(),
        "size_class": last["size_class"].to_numpy(),
        "output_band": [band(totals.loc[e, "output_value"], OUTPUT_BANDS) for e in last["enterprise_id"]],
        "employment_band": [band(v, EMPLOYMENT_BANDS) for v in last["employment"]],
    })
    released = k_anonymise(rows, k).sort_values("pseudonym", ignore_index=True)
    return released, len(rows) - len(released)


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _write(out: Path, name: str, frame: pd.DataFrame) -> dict[str, Any]:
    records = [{str(c): _clean(v) for c, v in row.items()} for row in frame.to_dict("records")]
    csv_path, json_path = out / f"{name}.csv", out / f"{name}.json"
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(frame.columns))
        writer.writeheader()
        for record in records:
            writer.writerow({c: "" if v is None else v for c, v in record.items()})
    json_path.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return {
        "name": name, "rows": len(records),
        "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (csv_path, json_path)},
        "schema": {"fields": [{"name": c, "type": _field_type(frame[c]), "description": DESCRIPTIONS.get(c, c)}
                              for c in frame.columns]},
    }


def _field_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "number"
    return "string"


def export(conn: psycopg.Connection, period: Period, out: Path, key: PseudonymKey, *, k: int = 3,
           actor: str = "opendata") -> ExportResult:
    """Write the period's open data into ``out`` and record the export; commits."""
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out, key.key_id)
    resources: list[dict[str, Any]] = []
    for name, (view, keys, where) in TABLES.items():
        frame = _as_bureau(conn, view, keys, where, period)
        frame["suppressed"] = frame["suppressed"].astype(bool)
        resources.append(_write(out, name, frame))
    resources.append(_write(out, "early_warnings", _warnings(conn, period)))
    directory, result.withheld = enterprise_directory(conn, period, key, k)
    result.smallest_class = smallest_class(directory)
    resource = _write(out, "enterprises", directory)
    resource["description"] = (f"one row per reporting enterprise; pseudonym = HMAC-SHA256 of release and credit"
                               f" code (key {key.key_id}), new in every release; "
                               f"{k}-anonymous on {', '.join(QUASI_IDENTIFIERS)} ('*' = generalised); "
                               f"{result.withheld} row(s) withheld")
    resources.append(resource)
    issued = datetime.now(UTC)
    metadata = {
        "title": f"Industrial statistics open data {period.label}", "licence": LICENCE, "period": period.label,
        "period_start": period.first.isoformat(), "period_end": period.end.isoformat(),
        "issued": issued.isoformat(), "updated": issued.date().isoformat(),
        "publisher": "city industry bureau (经济和信息化局)",
        "pseudonymisation": {"method": "HMAC-SHA256 of the release label and the unified social credit code,"
                                       " first 20 hex digits", "key_id": key.key_id, "scope": "release",
                             "linkable_across_releases": False},
        "k_anonymity": {"k": k, "quasi_identifiers": list(QUASI_IDENTIFIERS),
                        "smallest_class": result.smallest_class, "withheld_rows": result.withheld},
        "disclosure_control": "statistical tables come from the published, disclosure-controlled cells only; "
                              "suppressed cells have empty values and suppressed = true",
        "resources": resources,
    }
    (out / "metadata.json").write_text(json.dumps(metadata, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    result.files = {r["name"]: {"rows": r["rows"], "sha256": r["files"]} for r in resources}
    with conn.transaction():
        conn.execute(
            "INSERT INTO opendata_exports (period, period_start, period_end, key_id, files) VALUES"
            " (%s, %s, %s, %s, %s)", (period.label, period.first, period.end, key.key_id, Jsonb(result.files)))
        audit.record(conn, actor, "opendata.export", str(out),
                     {"period": period.label, "key_id": key.key_id, "k": k, "files": result.files,
                      "withheld_rows": result.withheld})
    return result
