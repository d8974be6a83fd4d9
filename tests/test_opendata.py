"""Open-data export on a published synthetic city: no identity leaves, k-anonymity holds, suppressed stays
suppressed, pseudonyms are keyed and rotatable, and every export is audited."""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from click.testing import CliRunner

from bureau.opendata.cli import opendata
from bureau.opendata.deid import KEY_VAR, k_anonymise, smallest_class
from tests.test_opendata_city import GROUP, city_db  # noqa: F401  (module-scoped fixture)

pytestmark = [pytest.mark.integration, GROUP]
KEY = "open-data-test-key-0001"


def _export(url: str, out: Path, key: str = KEY, period: str = "2026-10") -> str:
    result = CliRunner().invoke(opendata, ["export", "--period", period, "--out", str(out)],
                                env={"DATAFACTORY_DATABASE_URL": url, KEY_VAR: key})
    assert result.exit_code == 0, result.output
    return result.output


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def exported(city_db: str, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("opendata")
    _export(city_db, out)
    return out


def test_no_export_contains_a_credit_code_or_enterprise_name(city_db: str, exported: Path) -> None:  # noqa: F811
    with psycopg.connect(city_db) as conn:
        codes = [r[0] for r in conn.execute("SELECT credit_code FROM bureau_enterprises").fetchall()]
        names = [r[0] for r in conn.execute("SELECT DISTINCT name FROM bureau_enterprise_versions").fetchall()]
    assert len(codes) >= 400 and len(names) >= 400
    files = sorted(exported.iterdir())
    assert {p.name for p in files} >= {"metadata.json", "enterprises.csv", "enterprises.json", "by_town.csv"}
    text = "\n".join(p.read_text(encoding="utf-8") for p in files)
    leaked = [c for c in codes if c in text] + [n for n in names if n in text]
    assert leaked == []


def test_enterprise_directory_is_k_anonymous_and_banded(exported: Path) -> None:
    rows = _rows(exported / "enterprises.csv")
    assert len(rows) > 300
    classes = Counter((r["town"], r["division"], r["size_class"], r["output_band"], r["employment_band"])
                      for r in rows)
    assert min(classes.values()) >= 3
    assert set(rows[0]) == {"pseudonym", "town", "division", "size_class", "output_band", "employment_band",
                            "generalised"}
    assert all("–" in r["output_band"] or r["output_band"][0] in "≥*" for r in rows)
    assert all(r["output_band"] == "*" for r in rows if r["size_class"] == "*")
    metadata = json.loads((exported / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["k_anonymity"]["smallest_class"] == min(classes.values())
    assert metadata["licence"]["name"] == "CC-BY-4.0" and metadata["period"] == "2026-10"
    assert metadata["updated"] and metadata["pseudonymisation"]["key_id"]
    fields = {r["name"]: r["schema"]["fields"] for r in metadata["resources"]}
    assert [f["name"] for f in fields["enterprises"]] == list(rows[0])


def test_statistics_equal_the_views_and_suppressed_cells_stay_empty(city_db: str, exported: Path) -> None:  # noqa: F811
    rows = _rows(exported / "by_town.csv")
    with psycopg.connect(city_db) as conn:
        conn.execute("SET ROLE bureau")
        view = {r[0]: r[1:] for r in conn.execute(
            "SELECT town, output_value, suppressed FROM bureau_v_town WHERE month = '2026-10-01'").fetchall()}
    assert len(rows) == len(view)
    assert any(v[1] for v in view.values()) and any(not v[1] for v in view.values())
    for row in rows:
        output, suppressed = view[row["town"]]
        assert row["suppressed"] == str(suppressed)
        if suppressed:
            assert row["output_value"] == ""
        else:
            assert float(row["output_value"]) == pytest.approx(output)
    records = json.loads((exported / "by_town.json").read_text(encoding="utf-8"))
    assert all(r["output_value"] is None for r in records if r["suppressed"])


def test_pseudonyms_are_keyed_rotatable_and_exports_audited(city_db: str, exported: Path,  # noqa: F811
                                                            tmp_path: Path) -> None:
    first = {r["pseudonym"] for r in _rows(exported / "enterprises.csv")}
    _export(city_db, tmp_path / "same")
    assert {r["pseudonym"] for r in _rows(tmp_path / "same" / "enterprises.csv")} == first
    _export(city_db, tmp_path / "rotated", key="another-key-0000000002")
    rotated = {r["pseudonym"] for r in _rows(tmp_path / "rotated" / "enterprises.csv")}
    assert rotated.isdisjoint(first)
    meta = [json.loads((d / "metadata.json").read_text(encoding="utf-8"))["pseudonymisation"]["key_id"]
            for d in (exported, tmp_path / "rotated")]
    assert meta[0] != meta[1]
    with psycopg.connect(city_db) as conn:
        codes = [r[0] for r in conn.execute("SELECT credit_code FROM bureau_enterprises").fetchall()]
        audited = conn.execute("SELECT object, details->>'period', details->>'key_id' FROM audit_log"
                               " WHERE action = 'opendata.export' ORDER BY seq").fetchall()
        logged = conn.execute("SELECT count(*) FROM opendata_exports WHERE period = '2026-10'").fetchone()
    keyed = {hmac.new(KEY.encode(), f"2026-10\x1f{c}".encode(), hashlib.sha256).hexdigest()[:20] for c in codes}
    assert first <= keyed  # each pseudonym is the keyed hash of release and a registered enterprise, nothing else
    _export(city_db, tmp_path / "september", period="2026-09")
    assert {r["pseudonym"] for r in _rows(tmp_path / "september" / "enterprises.csv")}.isdisjoint(first)
    assert [a[1] for a in audited] == ["2026-10"] * 3 and audited[0][2] == meta[0]
    assert logged == (3,)


def test_missing_key_refuses_to_export(city_db: str, tmp_path: Path) -> None:  # noqa: F811
    result = CliRunner().invoke(opendata, ["export", "--period", "2026-10", "--out", str(tmp_path / "x")],
                                env={"DATAFACTORY_DATABASE_URL": city_db, KEY_VAR: ""})
    assert result.exit_code != 0 and KEY_VAR in result.output
    assert not (tmp_path / "x").exists()


def test_k_anonymise_generalises_then_withholds() -> None:
    frame = pd.DataFrame({
        "town": ["A", "A", "A", "A", "A", "B", "C"],
        "division": ["39", "39", "39", "38", "38", "38", "17"],
        "size_class": ["small"] * 3 + ["large", "small", "large", "micro"],
        "output_band": ["0–100"] * 7, "employment_band": ["20–100"] * 7,
    })
    released = k_anonymise(frame, 3)
    # Three identical rows stay exact; the two in town A division 38 plus B/38 share only division 38.
    assert sorted(map(tuple, released[["town", "division", "size_class", "output_band"]].to_numpy())) == [
        ("*", "38", "*", "*"), ("*", "38", "*", "*"), ("*", "38", "*", "*"),
        ("A", "39", "small", "0–100"), ("A", "39", "small", "0–100"), ("A", "39", "small", "0–100"),
    ]
    assert smallest_class(released) == 3 and len(frame) - len(released) == 1
