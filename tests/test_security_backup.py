"""Backup → drop → restore into a new database: every table's count and checksum equal, failures exit non-zero."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from datafactory.db import audit, plant_views, registry
from datafactory.db.connect import drop_database, with_database
from datafactory.db.rls import provision
from datafactory.db.samples import copy_rows
from ops import manifest
from ops.backup import manifest_path
from ops.cli import backup, restore

pytestmark = pytest.mark.integration


def _populate(db_url: str, enterprise: str) -> None:
    with psycopg.connect(db_url) as conn:
        t0 = datetime.now(UTC).replace(microsecond=123456) - timedelta(days=2)
        for site in ("s1", "s2"):
            plant = registry.upsert_plant(conn, enterprise, site, info={"town": "松山湖"})
            cell = registry.upsert_cell(conn, plant, "a", "l", "c")
            sig = registry.upsert_signal(conn, plant, cell, "power")
            copy_rows(conn, ((sig, t0 + timedelta(seconds=i), i * 0.1, 0) for i in range(5000)))
            conn.execute(
                "INSERT INTO dead_letters (topic, plant_id, reason, detail, payload) VALUES (%s, %s, 'x', 'y', %s)",
                (f"df/v1/{enterprise}/{site}", plant, b"\x00\xff"),
            )
        audit.record(conn, "tester", "config_deploy", enterprise, {"v": 1})
        conn.commit()
        provision(conn, actor="tester")


@pytest.fixture
def target_url(db_url: str) -> object:
    url = with_database(db_url, f"dft_restore_{uuid.uuid4().hex[:8]}")
    yield url
    drop_database(url)


def _drop_plant_roles(urls: list[str], enterprise: str) -> None:
    """Plant roles are cluster-wide: revoke them in every database still holding grants, then drop them."""
    roles: list[str] = []
    for url in urls:
        with psycopg.connect(url, autocommit=True) as conn:
            roles = [
                r[0]
                for r in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"df_plant_{enterprise}%",)
                )
            ]
            for role in roles:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with psycopg.connect(urls[0], autocommit=True) as conn:
        for role in roles:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_backup_drop_restore_verifies(
    db_url: str, target_url: str, enterprise: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _populate(db_url, enterprise)
    dump = tmp_path / "df.dump"
    # The test server trusts local connections, so a password in the URL is accepted and must never be shown.
    secret = f"bk-{enterprise}-pw"
    caplog.set_level("DEBUG")
    env = {"DATAFACTORY_DATABASE_URL": db_url.replace("postgres@", f"postgres:{secret}@")}
    result = CliRunner().invoke(backup, ["--out", str(dump)], env=env)
    assert result.exit_code == 0, result.output
    doc = json.loads(manifest_path(dump).read_text())
    assert doc["tables"]["samples"]["rows"] == 10_000 and doc["tables"]["dead_letters"]["rows"] == 2
    assert doc["audit_head"]["seq"] >= 2 and any(r.startswith("df_plant_") for r in doc["roles"])
    with psycopg.connect(db_url) as conn:
        source = manifest.compute(conn)
        assert conn.execute("SELECT action FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone() == ("backup",)
    _drop_plant_roles([db_url], enterprise)
    drop_database(db_url)

    secret_target = target_url.replace("postgres@", f"postgres:{secret}@")
    restored_out = CliRunner().invoke(restore, ["--from", str(dump), "--database-url", secret_target], env={})
    assert restored_out.exit_code == 0, restored_out.output
    for text in (result.output, restored_out.output, caplog.text, manifest_path(dump).read_text()):
        assert secret not in text
    result = restored_out
    assert f"{len(doc['tables'])} tables verified" in result.output
    with psycopg.connect(target_url) as conn:
        restored = manifest.compute(conn)
        conn.rollback()
        # Everything but the audit log (which gained the backup and restore entries) is identical.
        for table, want in doc["tables"].items():
            if table != "audit_log":
                assert restored.tables[table] == want, table
        assert restored.tables["samples"] == source.tables["samples"]
        assert audit.verify(conn).ok
        trail = conn.execute("SELECT string_agg(object || details::text, ' ') FROM audit_log").fetchone()
        assert trail is not None and "df.dump" in trail[0] and secret not in trail[0]
        # Tenancy survives: RLS on the table, or (a TimescaleDB hypertable) the plant readers' filtered view.
        if plant_views.needs_view(conn, "samples"):
            assert conn.execute("SELECT to_regclass('df_plant_views.samples') IS NOT NULL").fetchone() == (True,)
        else:
            flags = conn.execute("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'samples'").fetchone()
            assert flags == (True,)
    _drop_plant_roles([target_url], enterprise)


def test_restore_refuses_mismatch_damage_and_non_fresh_targets(
    db_url: str, target_url: str, enterprise: str, tmp_path: Path
) -> None:
    _populate(db_url, enterprise)
    dump = tmp_path / "df.dump"
    assert CliRunner().invoke(backup, ["--out", str(dump)], env={"DATAFACTORY_DATABASE_URL": db_url}).exit_code == 0
    mpath = manifest_path(dump)
    doc = json.loads(mpath.read_text())
    doc["tables"]["samples"]["checksum"] = "12345"
    mpath.write_text(json.dumps(doc))
    result = CliRunner().invoke(restore, ["--from", str(dump), "--database-url", target_url])
    assert result.exit_code == 1 and "table samples: checksum" in result.output

    result = CliRunner().invoke(restore, ["--from", str(dump), "--database-url", target_url])
    assert result.exit_code == 1 and "not a fresh database" in result.output

    with dump.open("r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    other = with_database(db_url, f"dft_restore_{uuid.uuid4().hex[:8]}")
    result = CliRunner().invoke(restore, ["--from", str(dump), "--database-url", other])
    assert result.exit_code == 1 and "sha256 differs" in result.output
    _drop_plant_roles([target_url, db_url], enterprise)


def test_a_restore_that_fails_midway_leaves_no_half_restored_database(
    db_url: str, enterprise: str, tmp_path: Path
) -> None:
    """A dump cut short (its manifest made to match, as a copy interrupted before the manifest was re-made would
    be): pg_restore fails part-way; the database it created is dropped and the error says so."""
    _populate(db_url, enterprise)
    dump = tmp_path / "df.dump"
    assert CliRunner().invoke(backup, ["--out", str(dump)], env={"DATAFACTORY_DATABASE_URL": db_url}).exit_code == 0
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) * 2 // 3])
    mpath = manifest_path(dump)
    doc = json.loads(mpath.read_text())
    doc["dump"]["sha256"] = hashlib.sha256(dump.read_bytes()).hexdigest()
    mpath.write_text(json.dumps(doc))
    target = with_database(db_url, f"dft_restore_{uuid.uuid4().hex[:8]}")
    try:
        result = CliRunner().invoke(restore, ["--from", str(dump), "--database-url", target])
        assert result.exit_code == 1, result.output
        assert re.search(r"pg_restore( --list)? failed", result.output), result.output
        assert "was dropped" in result.output, result.output
        with psycopg.connect(with_database(db_url, "postgres")) as conn:
            gone = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.rsplit("/", 1)[1],))
            assert gone.fetchone() is None
    finally:
        drop_database(target)
        _drop_plant_roles([db_url], enterprise)
