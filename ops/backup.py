"""``datafactory backup`` / ``restore``: a logical backup (pg_dump custom format) that proves itself on restore.

Backup opens a REPEATABLE READ transaction, exports its snapshot, and runs ``pg_dump --snapshot`` on it while
computing the manifest (row counts and checksums, see ``manifest``) in the same snapshot — so the dump and the
manifest describe exactly the same data even while ingest keeps writing. The manifest (``FILE.manifest.json``)
also records the dump's sha256 and the audit chain's head. Restore checks the file's sha256, creates a FRESH
database (refusing one that holds tables), creates missing roles NOLOGIN, runs ``pg_restore``, recomputes the
manifest there and fails on any difference. Both steps are written to the audit trail.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from datafactory.db import audit
from datafactory.db.connect import connect, database_name, drop_database, ensure_database
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


def _require_fresh(url: str) -> bool:
    """Refuse a target that holds relations; returns whether the database was created here."""
    created = ensure_database(url)
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
    return created


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


# TimescaleDB's own catalogue (hypertables, chunks, jobs) has foreign keys between its tables; restored in
# parallel, a job row can arrive before its hypertable ("bgw_job_hypertable_id_fkey"). Their data is restored
# first, in dump order on one connection; everything else in parallel.
_TIMESCALE_CATALOG_SCHEMAS = ("_timescaledb_catalog", "_timescaledb_config")


def _pg_restore(pg_restore: Path, dump: Path, url: str, *args: str) -> None:
    conninfo, env = child_connection(url)
    cmd = [str(pg_restore), "--exit-on-error", "--no-password", f"--dbname={conninfo}", *args, str(dump)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RestoreError(f"pg_restore failed (exit {proc.returncode}): {proc.stderr.strip()}")


def _run_pg_restore(pg_restore: Path, dump: Path, url: str, *, jobs: int, timescaledb: bool) -> None:
    if not timescaledb:
        _pg_restore(pg_restore, dump, url, f"--jobs={jobs}")
        return
    toc = subprocess.run([str(pg_restore), "--list", str(dump)], capture_output=True, text=True, check=False)
    if toc.returncode != 0:
        raise RestoreError(f"pg_restore --list failed (exit {toc.returncode}): {toc.stderr.strip()}")
    catalog: list[str] = []
    rest: list[str] = []  # every other entry: --section=data keeps its data ones (tables, sequence values)
    for line in toc.stdout.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        in_catalog = any(
            f" {kind} {schema} " in line
            for kind in ("TABLE DATA", "SEQUENCE SET")
            for schema in _TIMESCALE_CATALOG_SCHEMAS
        )
        (catalog if in_catalog else rest).append(line)
    with tempfile.TemporaryDirectory(prefix="df-restore-") as tmp:
        catalog_list, rest_list = Path(tmp) / "catalog.list", Path(tmp) / "data.list"
        catalog_list.write_text("\n".join(catalog) + "\n", encoding="utf-8")
        rest_list.write_text("\n".join(rest) + "\n", encoding="utf-8")
        _pg_restore(pg_restore, dump, url, "--section=pre-data", "--jobs=1")
        if catalog:
            _pg_restore(pg_restore, dump, url, "--section=data", f"--use-list={catalog_list}", "--jobs=1")
        if rest:
            _pg_restore(pg_restore, dump, url, "--section=data", f"--use-list={rest_list}", f"--jobs={jobs}")
        _pg_restore(pg_restore, dump, url, "--section=post-data", f"--jobs={jobs}")


def _abandon(url: str, *, timescaledb: bool, drop: bool) -> str:
    """After a failed pg_restore: leave no database that looks usable. Returns what was done, for the error."""
    name = database_name(url)
    if timescaledb:
        # timescaledb_pre_restore() left the database in restoring mode (its jobs never run); end that first.
        with contextlib.suppress(psycopg.Error, DataFactoryError), connect(url, autocommit=True) as conn:
            conn.execute("SELECT timescaledb_post_restore()")
    if not drop:
        return f"the database {name} (not created by this restore) is half-restored: drop or empty it before retrying"
    try:
        drop_database(url)
    except (psycopg.Error, DataFactoryError) as err:
        return f"the half-restored database {name} could not be dropped ({err}): drop it before using or retrying"
    return f"the half-restored database {name} was dropped"


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
    created_database = _require_fresh(url)
    created_roles = _ensure_roles(url, expected.roles)
    with connect(url, autocommit=True) as conn:
        major = _server_major(conn)
        if doc.get("timescaledb"):
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute("SELECT timescaledb_pre_restore()")
    pg_restore = find_tool("pg_restore", max(major, int(doc["server_version"]) // 10000))
    try:
        _run_pg_restore(pg_restore, dump, url, jobs=max(1, jobs), timescaledb=bool(doc.get("timescaledb")))
    except RestoreError as err:
        done = _abandon(url, timescaledb=bool(doc.get("timescaledb")), drop=created_database)
        raise RestoreError(f"{err}; {done}") from err
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
