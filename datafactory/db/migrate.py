"""Idempotent schema migrations.

Migrations are files in ``datafactory/db/migrations`` named ``NNNN_name.sql`` or ``NNNN_name.py`` (a module
with ``apply(conn, ctx)``), applied in order, each in its own transaction, recorded in ``schema_migrations``.
Number ranges: 0001–0099 core and ingest, 0100–0199 analytics, 0200–0299 bureau, 0300–0399 catalogue and open
data, 0400–0499 security and audit. An advisory lock serialises concurrent ``migrate`` runs. Storage policies
(TimescaleDB chunk interval, compression, retention) are compared with the settings on every run and changed only
where they differ, so a migrate with nothing to do takes no lock on ``samples``.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg

from datafactory.db import timescale
from datafactory.db.connect import connect, ensure_database
from datafactory.settings import Settings

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x64660001  # arbitrary, constant: "df" + 1


@dataclass(frozen=True)
class MigrationContext:
    timescale: bool
    chunk_interval: str


@dataclass(frozen=True)
class MigrationResult:
    applied: list[str]
    timescale: bool


def migration_files() -> list[Path]:
    files = [p for p in MIGRATIONS_DIR.iterdir() if p.suffix in (".sql", ".py") and p.stem[:4].isdigit()]
    return sorted(files, key=lambda p: p.stem)


def _apply_file(conn: psycopg.Connection, path: Path, ctx: MigrationContext) -> None:
    if path.suffix == ".sql":
        conn.execute(path.read_text(encoding="utf-8"))  # trusted file shipped in the package
        return
    spec = importlib.util.spec_from_file_location(f"datafactory_migration_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.apply(conn, ctx)


def _use_timescale(conn: psycopg.Connection, url: str) -> bool:
    """Whether this database's samples are (or will be) a hypertable.

    A database first migrated on plain PostgreSQL keeps its partitioned samples when TimescaleDB appears later:
    converting a populated table is a data migration of its own, never done implicitly on start.
    """
    if not timescale.enable(url):
        return False
    row = conn.execute("SELECT to_regclass('samples') IS NOT NULL").fetchone()
    if row and row[0] and not timescale.is_hypertable(conn, "samples"):
        log.warning(
            "TimescaleDB is enabled but samples is a plain partitioned table (this database was created on plain "
            "PostgreSQL); keeping it partitioned. To convert, restore a backup into a fresh database."
        )
        return False
    return True


def migrate(url: str, settings: Settings | None = None, *, create_database: bool = True) -> MigrationResult:
    settings = settings or Settings()
    if create_database:
        ensure_database(url)
    with connect(url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.commit()
            use_ts = _use_timescale(conn, url)
            conn.commit()
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.commit()
            done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations").fetchall()}
            ctx = MigrationContext(timescale=use_ts, chunk_interval=settings.timescale_chunk_interval)
            applied = []
            for path in migration_files():
                if path.stem in done:
                    continue
                with conn.transaction():
                    _apply_file(conn, path, ctx)
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.stem,))
                applied.append(path.stem)
                log.info("applied migration %s", path.stem)
            if use_ts:
                with conn.transaction():
                    timescale.apply_policies(
                        conn,
                        compress_after=settings.timescale_compress_after,
                        retention_days=settings.timescale_retention_days,
                        chunk_interval=settings.timescale_chunk_interval,
                    )
            conn.commit()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            conn.commit()
    return MigrationResult(applied, use_ts)


def require_migrated(url: str) -> None:
    """Raise ``SchemaNotMigrated`` unless every migration this code ships is applied to the database at ``url``.

    A service that writes data checks this before it takes any message: on an older schema it would fail on
    every write, and a message it had acknowledged meanwhile would be lost."""
    from datafactory.errors import SchemaNotMigrated

    needed = [p.stem for p in migration_files()]
    with connect(url, autocommit=True, application_name="datafactory-schema-check") as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")} if exists and exists[0] else set()
    missing = [name for name in needed if name not in done]
    if missing:
        at = max(done)[:4] if done else "none"
        raise SchemaNotMigrated(f"schema is at {at}, this version needs {needed[-1][:4]}")
