"""Early-warning detectors over real database contents: dead-letter floods and gateway rate spikes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner

from datafactory.db import registry
from datafactory.db.samples import copy_rows
from ops.cli import audit
from ops.detectors import WatchSettings, run
from ops.mosquitto_log import parse_lines

pytestmark = pytest.mark.integration


def _dead_letters(conn: psycopg.Connection, plant_id: int, times: list[datetime], reason: str) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dead_letters (received_at, topic, plant_id, reason, detail)"
            " VALUES (%s, 'df/v1/x', %s, %s, '')",
            [(t, plant_id, reason) for t in times],
        )


def test_dead_letter_flood_is_raised_once_for_the_flooding_plant(db_url: str, enterprise: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(db_url) as conn:
        noisy = registry.upsert_plant(conn, enterprise, "noisy")
        quiet = registry.upsert_plant(conn, enterprise, "quiet")
        # Usual: one dead letter an hour for both plants over the previous day.
        day = [now - timedelta(hours=h, minutes=30) for h in range(1, 24)]
        _dead_letters(conn, noisy, day, "malformed_json")
        _dead_letters(conn, quiet, day, "malformed_json")
        _dead_letters(conn, noisy, [now - timedelta(seconds=i) for i in range(1, 200)], "bad_topic")
        _dead_letters(conn, quiet, [now - timedelta(seconds=i) for i in range(1, 4)], "bad_topic")
        conn.commit()
        alerts = run(conn, WatchSettings(), now=now)
        floods = [a for a in alerts if a.detector == "dead_letter_flood"]
        assert [(a.plant_id, a.subject) for a in floods] == [(noisy, f"{enterprise}/noisy")]
        assert floods[0].observed == 199 and floods[0].baseline is not None and floods[0].baseline < 1
        assert floods[0].details["reasons"] == ["bad_topic"]
        assert run(conn, WatchSettings(), now=now + timedelta(seconds=1)) == []  # same window: not raised twice
        row = conn.execute("SELECT detector, plant_id, observed FROM security_alerts").fetchall()
        assert row == [("dead_letter_flood", noisy, 199.0)]


def test_one_bad_message_redelivered_in_a_flood_is_a_flood(db_url: str, enterprise: str) -> None:
    """Dead letters are one row per distinct message (deliveries count the repeats): 500 deliveries of one message
    in the window are a flood; a message first seen yesterday and seen again now counts once in the window."""
    now = datetime.now(UTC)
    with psycopg.connect(db_url) as conn:
        noisy = registry.upsert_plant(conn, enterprise, "noisy")
        quiet = registry.upsert_plant(conn, enterprise, "quiet")
        insert = (
            "INSERT INTO dead_letters (received_at, last_seen, deliveries, topic, plant_id, reason, detail)"
            " VALUES (%s, %s, %s, 'df/v1/x', %s, %s, '')"
        )
        conn.execute(insert, (now - timedelta(minutes=3), now - timedelta(seconds=2), 500, noisy, "malformed_json"))
        conn.execute(insert, (now - timedelta(hours=20), now - timedelta(seconds=5), 800, quiet, "bad_topic"))
        conn.commit()
        floods = [a for a in run(conn, WatchSettings(), now=now) if a.detector == "dead_letter_flood"]
    assert [(a.plant_id, a.observed, a.details["reasons"]) for a in floods] == [(noisy, 500, ["malformed_json"])]


def test_gateway_rate_spike(db_url: str, enterprise: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(db_url) as conn:
        plant = registry.upsert_plant(conn, enterprise, "s")
        cell = registry.upsert_cell(conn, plant, "a", "l", "c")
        sig = registry.upsert_signal(conn, plant, cell, "power")
        steady = [now - timedelta(minutes=70) + timedelta(seconds=6 * i) for i in range(600)]  # 1 per 6 s
        burst = [now - timedelta(minutes=5) + timedelta(milliseconds=10 * i) for i in range(20_000)]
        copy_rows(conn, ((sig, t, 1.0, 0) for t in steady + burst))
        conn.commit()
        alerts = [a for a in run(conn, WatchSettings(), now=now) if a.detector == "gateway_rate"]
        assert len(alerts) == 1 and alerts[0].plant_id == plant and alerts[0].observed == 20_000
    result = CliRunner().invoke(audit, ["watch"], env={"DATAFACTORY_DATABASE_URL": db_url})
    assert result.exit_code == 0 and "new alert(s)" in result.output


def test_log_parser_reads_mosquitto_lines() -> None:
    lines = [
        "1795431337: New client connected from 10.1.2.3:44361 as gwA (p5, c1, k60, u'acme.dg-1.gw-1').",
        "1795431338: Denied PUBLISH from gwA (d0, q1, r0, m1, 'df/v1/b/s/x/y/z/data', ... (1 bytes))",
        "1795431338: Sending CONNACK to 10.9.9.9 (0, 135)",
        "1795431338: Sending CONNACK to gwA (0, 0)",
        "garbage",
    ]
    events = list(parse_lines(iter(lines)))
    assert [(e.kind, e.client, e.user, e.address) for e in events] == [
        ("connected", "gwA", "acme.dg-1.gw-1", "10.1.2.3"),
        ("publish_denied", "gwA", "acme.dg-1.gw-1", "10.1.2.3"),
        ("auth_failure", "10.9.9.9", None, "10.9.9.9"),
    ]
    assert events[1].topic == "df/v1/b/s/x/y/z/data"
