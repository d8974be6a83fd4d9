"""analytics.store against a real database: the plant's analytics config and reading samples by meaning."""

from __future__ import annotations

import math

import orjson
import pandas as pd
import psycopg
import pytest

from analytics import store
from datafactory.config.analytics import MicrostopConvention
from datafactory.contract.quality import BAD_NO_COMMUNICATION
from datafactory.db import registry
from datafactory.db.samples import copy_rows, rows_from_us

pytestmark = pytest.mark.integration


def test_config_from_the_newest_deployed_plant_config(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        plant = registry.upsert_plant(conn, "acme", "dg-1")
        assert store.analytics_config(conn, plant).microstop_threshold_s == 120  # nothing deployed: defaults
        for version, threshold, at in (("a", 60, "2026-03-01T00:00Z"), ("b", 30, "2026-03-02T00:00Z")):
            doc = {"analytics": {"microstop_threshold_s": threshold, "microstops": "performance"}}
            conn.execute("INSERT INTO plant_configs (plant_id, gateway, version, config, received_at)"
                         " VALUES (%s, 'gw-1', %s, %s::jsonb, %s)", (plant, version, orjson.dumps(doc).decode(), at))
        cfg = store.analytics_config(conn, plant)
        assert cfg.microstop_threshold_s == 30 and cfg.microstops is MicrostopConvention.PERFORMANCE
        conn.execute("INSERT INTO plant_configs (plant_id, gateway, version, config, received_at)"
                     " VALUES (%s, 'gw-1', 'c', '{\"analytics\": {\"no_such_key\": 1}}', '2026-03-03T00:00Z')",
                     (plant,))
        assert store.analytics_config(conn, plant).microstop_threshold_s == 120  # invalid: defaults, not a crash


def test_samples_with_the_previous_value_and_bad_quality(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        plant = registry.upsert_plant(conn, "acme", "dg-1")
        cell = registry.upsert_cell(conn, plant, "a", "l", "m")
        sid = registry.upsert_signal(conn, plant, cell, "state", meaning="machine_state")
        t0 = 1_772_409_600_000_000  # 2026-03-02T00:00Z
        copy_rows(conn, rows_from_us([(sid, t0 - 60_000_000, 100.0, 0), (sid, t0, 500.0, 0),
                                      (sid, t0 + 1_000_000, 7.0, BAD_NO_COMMUNICATION)]))  # a value, but bad
        start = pd.Timestamp(t0, unit="us", tz="UTC")
        frame = store.samples(conn, [sid], start, start + pd.Timedelta(minutes=1))
        assert frame["time"].tolist() == [start - pd.Timedelta(minutes=1), start, start + pd.Timedelta(seconds=1)]
        assert frame["value"].tolist()[:2] == [100.0, 500.0] and math.isnan(frame["value"].iloc[2])
        assert store.latest_sample_time(conn, [sid]) == start + pd.Timedelta(seconds=1)
        assert store.samples(conn, [sid], start + pd.Timedelta(hours=1), start + pd.Timedelta(hours=2),
                             previous=False).empty
