"""The audit trail: appends chain by hash, changes are refused, and tampering by the owner is detected."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
from click.testing import CliRunner

from datafactory.db import audit
from datafactory.db.rls import provision
from ops.cli import audit as audit_cli

pytestmark = pytest.mark.integration


def _fill(db_url: str, n: int) -> None:
    with psycopg.connect(db_url) as conn:
        for i in range(n):
            audit.record(conn, "tester", "config_deploy", f"plant-{i}", {"version": f"v{i}", "n": i, "ok": True})
        conn.commit()


def _tamper(db_url: str, statement: str) -> None:
    """As the owner, who can switch the refusing trigger off: exactly what verify must catch."""
    with psycopg.connect(db_url) as conn:
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
        conn.execute(statement)
        conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
        conn.commit()


def _verify_cli(db_url: str) -> tuple[int, str]:
    result = CliRunner().invoke(audit_cli, ["verify"], env={"DATAFACTORY_DATABASE_URL": db_url})
    return result.exit_code, result.output


def test_chain_verifies_and_changes_are_refused(db_url: str) -> None:
    _fill(db_url, 5)
    with psycopg.connect(db_url) as conn:
        result = audit.verify(conn)
        assert result.ok and result.rows == 5 and result.head_seq == 5
        assert audit.head(conn) == (5, result.head_hash)
        first = conn.execute("SELECT prev_hash FROM audit_log WHERE seq = 1").fetchone()
        assert first == (audit.GENESIS,)
        for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"), conn.transaction():
                conn.execute(statement)
        # A caller cannot choose its place in the chain: seq and hashes are assigned by the trigger.
        conn.execute(
            "INSERT INTO audit_log (seq, actor, action, prev_hash, hash) VALUES (99, 'x', 'y', 'forged', 'forged')"
        )
        assert conn.execute("SELECT seq FROM audit_log WHERE actor = 'x'").fetchone() == (6,)
        conn.commit()
        provision(conn, actor="tester")
        conn.execute("SET ROLE df_ingest")
        audit.record(conn, "ingest", "registry_import", "plants", {})
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("UPDATE audit_log SET actor = 'x'")
        conn.rollback()
    code, output = _verify_cli(db_url)
    assert code == 0 and "intact: 7 row(s)" in output  # 5 + forged attempt + db_roles
    shown = CliRunner().invoke(audit_cli, ["show", "--limit", "2"], env={"DATAFACTORY_DATABASE_URL": db_url})
    entries = [json.loads(line) for line in shown.output.splitlines()]
    assert [e["seq"] for e in entries] == [6, 7] and entries[1]["action"] == "db_roles"


def test_verify_detects_a_modified_row(db_url: str) -> None:
    _fill(db_url, 4)
    _tamper(db_url, """UPDATE audit_log SET details = jsonb_set(details, '{version}', '"v9"') WHERE seq = 2""")
    with psycopg.connect(db_url) as conn:
        result = audit.verify(conn)
    assert [(p.seq, p.kind) for p in result.problems] == [(2, "modified")]
    code, output = _verify_cli(db_url)
    assert code == 1 and "seq=2" in output and "modified" in output


def test_verify_detects_a_deleted_row(db_url: str) -> None:
    _fill(db_url, 4)
    _tamper(db_url, "DELETE FROM audit_log WHERE seq = 3")
    with psycopg.connect(db_url) as conn:
        result = audit.verify(conn)
    assert [(p.seq, p.kind) for p in result.problems] == [(4, "deleted_before")]
    assert "seq=3..3" in str(result.problems[0])
    code, output = _verify_cli(db_url)
    assert code == 1 and "seq=4" in output


def test_verify_detects_a_rewritten_link(db_url: str) -> None:
    """Replacing a row wholesale with a self-consistent hash still breaks the next row's link."""
    _fill(db_url, 3)
    _tamper(
        db_url,
        "UPDATE audit_log SET actor = 'mallory', hash = df_audit_hash(prev_hash,"
        " df_audit_canonical(seq, time, 'mallory', action, object, details)) WHERE seq = 2",
    )
    with psycopg.connect(db_url) as conn:
        result = audit.verify(conn)
    assert [(p.seq, p.kind) for p in result.problems] == [(3, "broken_link")]


def test_concurrent_writers_keep_one_chain(db_url: str) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with psycopg.connect(db_url) as conn:
                for i in range(20):
                    audit.record(conn, name, "x", str(i))
                    conn.commit()
        except BaseException as err:  # surfaced by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(f"w{k}",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with psycopg.connect(db_url) as conn:
        result = audit.verify(conn)
    assert result.ok and result.rows == 60
