"""Grafana alert rules provisioned from the plants' alerting.rules: the committed file validates against Grafana's
alert-rule provisioning schema (and the checks Grafana's rule validation adds), the schema refuses what Grafana
would, and every rule's query runs on a real database — expanded as Grafana expands it — where it reports exactly
the subjects ``alerts run`` reports for the same rule, with the same threshold from the same config — also as the
operators' role the platform data source logs in as."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from alerting.engine import Plant, RoundStats, _conditions
from datafactory.config.loader import validate_document
from datafactory.config.models import PlantConfig
from datafactory.db.rls import provision
from datafactory.db.roles import ADMIN
from grafana import alert_rules
from grafana import provision as provisioning
from grafana.expand import expand, leftover
from simulator.layout import demo_layout
from simulator.plant_config import plant_document
from tests.support import alert_scene

RULES_FILE = Path(provisioning.DEFAULT_OUT) / alert_rules.RULES_FILE


def _committed() -> dict:
    return yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))


def test_committed_rules_validate_and_cover_every_enabled_rule() -> None:
    doc = _committed()
    assert alert_rules.check(doc) == []
    configs = provisioning.plant_configs(provisioning.DEFAULT_CONFIGS)
    wanted = {(f"{c.enterprise.id}/{c.site.id}", r.id) for c in configs for r in c.alerting.rules if r.enabled}
    got = {(r["labels"]["plant"], r["labels"]["rule"]) for g in doc["groups"] for r in g["rules"]}
    assert got == wanted
    # Thresholds are the configs' own: the machine-down delay and the contracted maximum demand.
    demo = next(c for c in configs if c.site.id == "dongguan-1")
    by_uid = {r["uid"]: r for g in doc["groups"] for r in g["rules"]}
    peak = next(r for r in demo.alerting.rules if r.kind == "peak_demand")
    limit = by_uid[alert_rules.uid(demo, peak.id)]["data"][1]["model"]["conditions"][0]["evaluator"]["params"]
    assert limit == [peak.max_kw]


def test_schema_refuses_what_grafana_would() -> None:
    good = _committed()

    def broken(change: object) -> dict:
        doc = copy.deepcopy(good)
        change(doc)  # type: ignore[operator]
        return doc

    rule = ("groups", 0, "rules", 0)

    def at(doc: dict, path: tuple) -> dict:
        for p in path:
            doc = doc[p]
        return doc

    cases = {
        "no uid": lambda d: at(d, rule).pop("uid"),
        "uid too long": lambda d: at(d, rule).update(uid="x" * 41),
        "no data": lambda d: at(d, rule).update(data=[]),
        "bad noDataState": lambda d: at(d, rule).update(noDataState="Ok"),
        "bad for": lambda d: at(d, rule).update({"for": "10 minutes"}),
        "misspelt key": lambda d: at(d, rule).update(exec_err_state="Error"),
        "no folder": lambda d: d["groups"][0].pop("folder"),
        "interval not a multiple of 10 s": lambda d: d["groups"][0].update(interval="15s"),
        "condition names no query": lambda d: at(d, rule).update(condition="C"),
        "expression reads nothing": lambda d: at(d, rule)["data"][1]["model"].update(expression="Z"),
        "duplicate uid": lambda d: at(d, ("groups", 0, "rules", 1)).update(uid=at(d, rule)["uid"]),
        "apiVersion 2": lambda d: d.update(apiVersion=2),
    }
    for name, change in cases.items():
        assert alert_rules.check(broken(change)), f"accepted: {name}"


def _fires(op: str, value: float, limit: float) -> bool:
    return value > limit if op == "gt" else value < limit


def test_every_rule_query_runs_and_agrees_with_alerts_run(db_url: str) -> None:
    doc = plant_document(demo_layout())
    defaults = [r.model_dump(mode="json") for r in validate_document(doc).alerting.rules]
    doc["alerting"] = {"rules": defaults + alert_scene.MORE_RULES}
    cfg = validate_document(doc)
    expected = alert_scene.EXPECTED | alert_scene.MORE_EXPECTED
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(db_url) as conn:
        scene = alert_scene.plant(conn, cfg, now)
        conn.commit()
        found, evaluated = _conditions(conn, [Plant(scene.plant_id, cfg)], now, RoundStats())
        engine: dict[str, set[str]] = {}
        for (_, rule_id, subject), (rule, cond) in found.items():
            # Grafana's machine-down threshold is the delay itself (minutes down, from the data), so compare with
            # what alerts run fires, not what it holds pending; every other rule's delay is Grafana's `for`.
            if rule.kind == "machine_down" and (now - cond.since).total_seconds() < rule.for_s:
                continue
            engine.setdefault(rule_id, set()).add(subject)
        assert {r for _, r in evaluated} == {r.id for r in cfg.alerting.rules}
        assert engine == expected  # alerts run reports exactly what the scene planted, and nothing for the rest

        assert _grafana_subjects(conn, cfg, now) == expected
        # The platform data source logs in as an operator, not the owner: as df_admin after `db roles`, the same.
        provision(conn, actor="test-grafana-alert-rules")
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(ADMIN)))
        try:
            assert _grafana_subjects(conn, cfg, now) == expected
        finally:
            conn.execute("RESET ROLE")


def _grafana_subjects(conn: psycopg.Connection, cfg: PlantConfig, now: datetime) -> dict[str, set[str]]:
    """Every Grafana rule's query expanded as Grafana does, run, and its threshold applied: rule id → subjects."""
    grafana: dict[str, set[str]] = {}
    for gr in alert_rules.rules_of(cfg):
        text = expand(gr.sql, {}, now - timedelta(seconds=gr.window_s), now)
        assert not leftover(text), (gr.title, leftover(text))
        cur = conn.execute(text)
        names = [c.name for c in cur.description or []]
        for row in cur.fetchall():  # Grafana's numeric table data: text columns are labels, exactly one number
            numbers = [v for v in row if isinstance(v, (int, float)) or hasattr(v, "is_finite")]
            texts = [v for v in row if isinstance(v, str)]
            assert len(numbers) == 1 and len(texts) == len(row) - 1, (gr.title, names, row)
            if _fires(gr.op, float(numbers[0]), gr.limit):
                grafana.setdefault(gr.rule.id, set()).add(texts[0])
    return grafana


def test_a_plant_with_two_configs_has_one_group_and_one_set_of_rules() -> None:
    from datafactory.errors import ConfigError

    doc = plant_document(demo_layout())
    one, two = validate_document(doc), validate_document(doc)
    rules = alert_rules.document([one, two])
    assert len(rules["groups"]) == 1 and alert_rules.check(rules) == []
    assert len(rules["groups"][0]["rules"]) == len(alert_rules.rules_of(one))
    doc["alerting"] = {"rules": [{"id": "peak-demand", "kind": "peak_demand", "max_kw": 800}]}
    with pytest.raises(ConfigError, match=r"alerting.rules\[peak-demand\]: differs between two configs"):
        alert_rules.document([one, validate_document(doc)])
