"""Plant config: schema errors and cross-field rules name their key paths; the committed schema is fresh."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from datafactory.config import load_config_text
from datafactory.config.schema import DOCS_PATH, SCHEMA_PATH, render_docs, render_schema
from datafactory.errors import ConfigError

GOOD = """
version: 1
enterprise:
  id: acme
  name: 东莞市示例精密制造有限公司
  credit_code: 91350100M000100Y43
  industry_code: C3484
  town: 松山湖
  size_class: small
  ownership: private
site: {id: dg-1}
gateway: {id: gw-1}
areas:
  - id: stamping
    lines:
      - id: line1
        cells: [{id: press-01, ideal_cycle_time_s: 2.0}]
sources:
  - kind: opcua
    id: plc
    endpoint: opc.tcp://127.0.0.1:4840/
    security: {policy: none, mode: none}
    nodes:
      - {node_id: "ns=2;s=P1.Power", cell: stamping/line1/press-01, signal: power, meaning: power_kw, unit: kW}
      - {node_id: "ns=2;s=P1.State", cell: stamping/line1/press-01, signal: state, meaning: machine_state}
"""


def _problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        load_config_text(text)
    return dict(exc.value.problems)


def test_good_config_loads() -> None:
    cfg = load_config_text(GOOD)
    assert [b.signal for b in cfg.bindings()] == ["power", "state"]
    assert list(cfg.cell_paths()) == ["stamping/line1/press-01"]


def test_three_mistakes_name_three_key_paths() -> None:
    doc = yaml.safe_load(GOOD)
    doc["sources"][0]["nodes"][1]["node_id"] = 42  # wrong type
    doc["sources"][0]["nodes"][0]["meaning"] = "power_mw"  # not a meaning
    doc["gateway"]["batch_max_sample"] = 10  # typo'd key
    problems = _problems(yaml.safe_dump(doc, allow_unicode=True))
    assert set(problems) == {
        "sources[0].nodes[1].node_id",
        "sources[0].nodes[0].meaning",
        "gateway.batch_max_sample",
    }
    assert "typo" in problems["gateway.batch_max_sample"]


def test_security_must_be_explicit() -> None:
    doc = yaml.safe_load(GOOD)
    del doc["sources"][0]["security"]
    assert "sources[0].security" in _problems(yaml.safe_dump(doc, allow_unicode=True))


def test_cross_field_rules() -> None:
    doc = yaml.safe_load(GOOD)
    doc["sources"][0]["nodes"][1]["cell"] = "stamping/line1/press-99"
    doc["sources"][0]["nodes"].append(dict(doc["sources"][0]["nodes"][0]))
    doc["sources"][0]["security"] = {"policy": "basic256sha256", "mode": "none"}
    problems = _problems(yaml.safe_dump(doc, allow_unicode=True))
    assert "press-99" in problems["sources[0].nodes[1].cell"]
    assert "already bound" in problems["sources[0].nodes[2].signal"]
    assert "does not fit" in problems["sources[0].security.mode"]
    assert "trusted_server_fingerprints" in problems["sources[0].security"]


def test_bad_credit_code_and_timezone() -> None:
    doc = yaml.safe_load(GOOD)
    doc["enterprise"]["credit_code"] = "91350100M000100Y44"
    doc["enterprise"]["timezone"] = "Mars/Olympus"
    problems = _problems(yaml.safe_dump(doc, allow_unicode=True))
    assert "check character" in problems["enterprise.credit_code"]
    assert "time zone" in problems["enterprise.timezone"]


def test_secrets_cannot_be_written_inline() -> None:
    doc = yaml.safe_load(GOOD)
    doc["sources"][0]["auth"] = {"kind": "username", "username_env": "U", "password": "hunter2"}
    problems = _problems(yaml.safe_dump(doc, allow_unicode=True))
    assert "sources[0].auth.password" in problems
    assert "sources[0].auth.password_env" in problems


def test_committed_schema_and_docs_are_fresh() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), "run: python -m datafactory.config.schema"
    assert DOCS_PATH.read_text(encoding="utf-8") == render_docs(), "run: python -m datafactory.config.schema"


def test_cli_validate_reports_every_error(tmp_path: Path) -> None:
    doc = yaml.safe_load(GOOD)
    doc["site"]["id"] = "Bad Site"
    doc["sources"][0]["endpoint"] = "http://nope"
    doc["areas"][0]["lines"][0]["cells"][0]["ideal_cycle_time_s"] = -1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "config", "validate", str(good), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2  # bad input
    assert f"{good}: ok" in proc.stdout
    for path in ("site.id", "sources[0].endpoint", "areas[0].lines[0].cells[0].ideal_cycle_time_s"):
        assert f"  {path}: " in proc.stderr
