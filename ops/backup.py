"""``datafactory backup`` / ``restore``: a logical backup (pg_dump custom format) that proves itself on restore.

Backup opens a REPEATABLE READ transaction, exports its snapshot, and runs ``pg_dump --snapshot`` on it while
computing the manifest (row counts and checksums, see ``manifest``) in the same snapshot — so the dump and the
manifest describe exactly the same data even while ingest keeps writing. The manifest (``FILE.manifest.json``)
also records the dump's sha256 and the audit chain's head. Restore checks the file's sha256, creates a FRESH
database (refusing one that holds tables), creates missing roles NOLOGIN, runs ``pg_restore``, recomputes the
manifest there and fails on any difference. Both steps are written to the audit trail.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from datafactory.db import audit
from datafactory.db.connect import connect, database_name, ensure_database
from datafactory.errors import DataFactoryError
from datafactory.settings import redact_url
from ops import manifest
from ops.pg_tools import ToolError, child_connection, find_tool, tool_version

log = logging.getLogger(__name__)
FORMAT = "datafactory-backup/1"


class RestoreError(DataFactoryError):
    """The target is not fresh, the backup file is damaged, or the restored data differs from the manifest."""

    def __init__(self, detail: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        super().__init__(detail + "".join(f"\n  {p}" for p in self.problems))


def manifest_path(dump: Path) -> Path:
    return dump.with_name(dump.name + ".manifest.json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _server_major(conn: psycopg.Connection) -> int:
    return conn.info.server_version // 10000


def _timescaledb(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None


@dataclass
class BackupResult:
    dump: Path
    manifest: Path
    seconds: float
    bytes: int
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)


def backup(url: str, out: Path, *, actor: str, compress: int | None = None) -> BackupResult:
    """Dump the database at ``url`` to ``out`` and write ``out.manifest.json`` beside it."""
    started = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    with connect(url, application_name="datafactory-backup") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert snapshot is not None
        pg_dump = find_tool("pg_dump", _server_major(conn))
        conninfo, env = child_connection(url)
        cmd = [str(pg_dump), "--format=custom", f"--snapshot={snapshot[0]}", "--no-password", f"--file={out}"]
        if compress is not None:
            cmd.append(f"--compress={compress}")
        log.info("backup of %s with %s", redact_url(url), pg_dump)
        # The manifest is computed while pg_dump streams: both read the exported snapshot, in parallel.
        with subprocess.Popen([*cmd, f"--dbname={conninfo}"], env=env, stderr=subprocess.PIPE, text=True) as proc:
            try:
                content = manifest.compute(conn)
            finally:
                _, stderr = proc.communicate()
        if proc.returncode != 0:
            raise ToolError(f"pg_dump failed (exit {proc.returncode}): {stderr.strip()}")
        timescaledb = _timescaledb(conn)
        server_version = conn.info.server_version
        conn.rollback()
    doc = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "database": database_name(url),
        "server_version": server_version,
        "pg_dump": f"{pg_dump} ({tool_version(pg_dump)})",
        "timescaledb": timescaledb,
        "dump": {"file": out.name, "bytes": out.stat().st_size, "sha256": _sha256(out)},
        **content.to_json(),
    }
    mpath = manifest_path(out)
    mpath.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    seconds = time.monotonic() - started
    with connect(url) as conn:
        audit.record(
            conn,
            actor,
            "backup",
            str(out),
            {
                "sha256": doc["dump"]["sha256"],
                "bytes": doc["dump"]["bytes"],
                "tables": len(content.tables),
                "rows": sum(t["rows"] for t in content.tables.values()),
                "seconds": round(seconds, 3),
            },
        )
        conn.commit()
    return BackupResult(out, mpath, seconds, doc["dump"]["bytes"], content.tables)


@dataclass
class RestoreResult:
    database: str
    seconds: float
    tables: int
    problems: list[str]


def _require_fresh(url: str) -> None:
    ensure_database(url)
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_%'"
        ).fetchone()
    if row and row[0]:
        raise RestoreError(
            f"{redact_url(url)} is not a fresh database ({row[0]} relations); restore needs an empty one"
        )


def _ensure_roles(url: str, roles: list[str]) -> list[str]:
    created = []
    with connect(url, autocommit=True) as conn:
        for role in roles:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                continue
            try:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                created.append(role)
            except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                pass
    return created


def restore(dump: Path, url: str, *, actor: str, jobs: int = 2, manifest_file: Path | None = None) -> RestoreResult:
    """Restore ``dump`` into the fresh database at ``url`` and verify it; raise ``RestoreError`` on any mismatch."""
    started = time.monotonic()
    mpath = manifest_file or manifest_path(dump)
    try:
        doc = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RestoreError(f"cannot read the backup manifest {mpath}: {err}") from err
    if doc.get("format") != FORMAT:
        raise RestoreError(f"{mpath}: not a {FORMAT} manifest")
    if _sha256(dump) != doc["dump"]["sha256"]:
        raise RestoreError(f"{dump}: sha256 differs from the manifest: the file is damaged or not this backup")
    expected = manifest.Manifest.from_json(doc)
    _require_fresh(url)
    created_roles = _ensure_roles(url, expected.roles)
    with connect(url, autocommit=True) as conn:
        major = _server_major(conn)
        if doc.get("timescaledb"):
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute("SELECT timescaledb_pre_restore()")
    pg_restore = find_tool("pg_restore", max(major, int(doc["server_version"]) // 10000))
    conninfo, env = child_connection(url)
    cmd = [str(pg_restore), "--exit-on-error", "--no-password", f"--jobs={max(1, jobs)}", f"--dbname={conninfo}"]
    proc = subprocess.run([*cmd, str(dump)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RestoreError(f"pg_restore failed (exit {proc.returncode}): {proc.stderr.strip()}")
    with connect(url) as conn:
        if doc.get("timescaledb"):
            conn.execute("SELECT timescaledb_post_restore()")
            conn.commit()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        actual = manifest.compute(conn)
        conn.rollback()
        problems = manifest.differences(expected, actual)
        conn.execute("RESET ALL")
        audit.record(
            conn,
            actor,
            "restore",
            str(dump),
            {
                "sha256": doc["dump"]["sha256"],
                "verified": not problems,
                "problems": problems[:20],
                "created_roles": created_roles,
                "source_database": doc.get("database"),
            },
        )
        conn.commit()
    seconds = time.monotonic() - started
    if problems:
        raise RestoreError(f"restored {redact_url(url)} does not match the manifest", problems)
    return RestoreResult(database_name(url), seconds, len(actual.tables), problems)
