"""Schema migration (idempotent, plain PostgreSQL), registry upserts and the binary COPY writer."""

from __future__ import annotations

import math

import psycopg

from datafactory.config import load_config_text
from datafactory.contract.quality import BAD_NO_COMMUNICATION, from_db
from datafactory.db import registry
from datafactory.db.migrate import migrate
from datafactory.db.samples import copy_rows, rows_from_us
from tests.test_config import GOOD


def test_migrate_twice_is_idempotent(db_url: str) -> None:
    first = migrate(db_url)  # the template already applied everything
    second = migrate(db_url)
    assert first.applied == [] and second.applied == []
    with psycopg.connect(db_url) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
        assert {"0001_core", "0002_samples"} <= names
        if not first.timescale:
            kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'samples'").fetchone()
            assert kind == ("p",), "samples is range-partitioned on plain PostgreSQL"


def test_register_config_and_copy_samples(db_url: str) -> None:
    cfg = load_config_text(GOOD)
    with psycopg.connect(db_url) as conn:
        ids = registry.register_config(conn, cfg)
        again = registry.register_config(conn, cfg)
        assert ids == again and set(ids) == {"stamping/line1/press-01/power", "stamping/line1/press-01/state"}
        assert registry.signal_ids(conn, "acme", "dg-1") == ids
        power = ids["stamping/line1/press-01/power"]
        t0 = 1_763_856_000_000_000  # 2025-11-23T00:00:00Z in µs
        n = copy_rows(
            conn,
            rows_from_us([(power, t0, 1.25, 0), (power, t0 + 1, math.nan, BAD_NO_COMMUNICATION)]),
        )
        conn.commit()
        assert n == 2
        rows = conn.execute(
            "SELECT value, quality, df_quality_severity(quality), extract(epoch FROM time) * 1e6"
            " FROM samples WHERE signal_id = %s ORDER BY time",
            (power,),
        ).fetchall()
        assert rows[0][:3] == (1.25, 0, "good") and int(rows[0][3]) == t0
        assert rows[1][0] is None and from_db(rows[1][1]) == BAD_NO_COMMUNICATION and rows[1][2] == "bad"
        attrs = conn.execute("SELECT attributes FROM cells WHERE cell = 'press-01'").fetchone()
        assert attrs is not None and attrs[0]["ideal_cycle_time_s"] == 2.0
