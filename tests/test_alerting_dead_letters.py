"""The ingest rule's dead-letter check counts deliveries, not rows, on a real database.

Ingest keeps one dead_letters row per distinct dead letter and adds each new arrival of it to ``deliveries``
(migration 0610). The letters here are written by ingest's own writer, the same one the worker uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from alerting.conditions import ingest
from datafactory.config.alerting import IngestRule
from datafactory.config.loader import validate_document
from datafactory.db.registry import register_config
from grafana import alert_rules
from grafana.expand import expand
from ingest.dead_letters import DeadLetter, insert_dead_letters
from simulator.layout import demo_layout
from simulator.plant_config import plant_document


def _letter(plant_id: int, payload: bytes) -> DeadLetter:
    return DeadLetter("df/v1/x/y/a/l/c/data", plant_id, "malformed_json", "not JSON", payload)


def _grafana_dead_letters(conn: psycopg.Connection, cfg, now: datetime) -> list[int]:
    """What the provisioned Grafana rule's query reads for the same window: it must agree with `alerts run`."""
    rules = [g for g in alert_rules.rules_of(cfg) if g.suffix == "dead-letters"]
    assert rules, "the demo plant has an ingest rule with a dead-letter check"
    text = expand(rules[0].sql, {}, now - timedelta(seconds=rules[0].window_s), now)
    return [int(r[1]) for r in conn.execute(text).fetchall()]


def test_dead_letter_rule_counts_deliveries_in_the_window(db_url: str) -> None:
    cfg = validate_document(plant_document(demo_layout()))
    rule = IngestRule(id="ingest", max_dead_letters=100, window_s=900)
    with psycopg.connect(db_url) as conn:
        register_config(conn, cfg)
        row = conn.execute("SELECT id FROM plants WHERE enterprise = %s AND site = %s",
                           (cfg.enterprise.id, cfg.site.id)).fetchone()
        assert row is not None
        plant_id = int(row[0])
        plants = {plant_id: cfg}
        # Long ago: a letter delivered 1000 times whose last arrival is outside the window counts for nothing.
        insert_dead_letters(conn, "w", [_letter(plant_id, b"old")] * 1000)
        conn.execute("UPDATE dead_letters SET received_at = now() - interval '2 hours',"
                     " last_seen = now() - interval '1 hour'")
        # One distinct letter arriving 100 times: 100 deliveries, one row; not more than the limit.
        for _ in range(4):
            insert_dead_letters(conn, "w", [_letter(plant_id, b"{bad")] * 25)
        conn.commit()
        rows, deliveries = conn.execute(
            "SELECT count(*), sum(deliveries) FROM dead_letters WHERE last_seen > now() - interval '1 minute'"
        ).fetchone() or (0, 0)
        assert (rows, deliveries) == (1, 100)
        now = datetime.now(UTC)
        assert [c for c in ingest(conn, rule, plants, now) if c.subject == "dead-letters"] == []
        assert _grafana_dead_letters(conn, cfg, now) == [100]

        insert_dead_letters(conn, "w", [_letter(plant_id, b"{bad")])  # the 101st arrival
        conn.commit()
        now = datetime.now(UTC)
        told = [c for c in ingest(conn, rule, plants, now) if c.subject == "dead-letters"]
        assert len(told) == 1 and told[0].value == 101.0 and told[0].facts["dead_letters"] == 101, told
        assert now - timedelta(seconds=rule.window_s) <= told[0].since <= now  # opened within the window
        assert _grafana_dead_letters(conn, cfg, now) == [101]
