"""Every command meets ordinary mistakes with one line and a documented exit code, never a traceback.

Each command that uses the database is run against each class of bad database input: a malformed URL, a closed
port, a database that does not exist, and a database that exists but was never migrated. Commands that use the
broker get a URL without a scheme and a closed port. ``-v`` brings the traceback back.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import psycopg
import pytest
from psycopg import sql

from app.cli import failure
from app.cli.main import COMMANDS, OFFLINE, cli, main
from datafactory.db.connect import with_database
from tests.conftest import PG_SERVER, _admin

pytestmark = pytest.mark.integration

CLOSED_DB = "postgresql://postgres@127.0.0.1:1/datafactory"  # loopback, nothing listens on port 1


def _database_commands(tmp: Path) -> list[list[str]]:
    return [
        ["analytics", "run"],
        ["analytics", "backfill", "--from", "2026-10-01T00:00:00+00:00", "--to", "2026-10-02T00:00:00+00:00"],
        ["audit", "show"],
        ["audit", "verify"],
        ["backup", "--out", str(tmp / "b.dump")],
        ["bulletin", "--period", "2026-10", "--out", str(tmp), "--no-pdf"],
        ["bureau", "analyse", "--month", "2026-10"],
        ["bureau", "audit"],
        ["bureau", "publish", "--month", "2026-10"],
        ["bureau", "stats", "--month", "2026-10"],
        ["bureau", "registry", "show", "91441900MA4UJ0XX0X"],
        ["catalog", "list"],
        ["catalog", "check"],
        ["catalog", "freshness"],
        ["catalog", "show", "samples"],
        ["catalog", "export", "--out", str(tmp / "catalog.json")],
        ["city", "simulate", "--enterprises", "20", "--months", "2", "--no-plant"],
        ["db", "partitions"],
        ["db", "roles"],
        ["opendata", "export", "--period", "2026-10", "--out", str(tmp / "od")],
    ]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), captured.err


def _assert_one_line(argv: list[str], code: int, err: str, want: set[int]) -> None:
    assert "Traceback" not in err, f"{argv}: traceback\n{err}"
    assert code in want, f"{argv}: exit {code} (want {want})\n{err}"
    lines = [line for line in err.splitlines() if line.strip() and " WARNING " not in line]
    assert lines, f"{argv}: exit {code} but nothing said"
    assert lines[-1].startswith(("error:", "Error:")), f"{argv}: last line {lines[-1]!r}"
    assert len(lines[-1]) < 600, f"{argv}: not one short line"


@pytest.fixture
def empty_db() -> Iterator[str]:
    name = f"dft_empty_{uuid.uuid4().hex[:8]}"
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(PG_SERVER, name)
    with _admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.parametrize(
    ("label", "want"),
    [("malformed", {failure.BAD_INPUT}), ("closed_port", {failure.UNREACHABLE}),
     ("missing_database", {failure.NOT_MIGRATED}), ("never_migrated", {failure.NOT_MIGRATED})],
)
def test_every_database_command_fails_in_one_line(  # noqa: PLR0917 (pytest fixtures)
    label: str, want: set[int], empty_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = {
        "malformed": "localhost:5432/datafactory",
        "closed_port": CLOSED_DB,
        "missing_database": with_database(PG_SERVER, f"dft_missing_{uuid.uuid4().hex[:8]}"),
        "never_migrated": empty_db,
    }[label]
    monkeypatch.setenv("DATAFACTORY_DATABASE_URL", url)
    monkeypatch.setenv("DATAFACTORY_PSEUDONYM_KEY", "k" * 32)  # so open data gets as far as the database
    for argv in _database_commands(tmp_path):
        code, err = _run(argv, capsys)
        _assert_one_line(argv, code, err, want)


def test_db_migrate_names_the_users_database_and_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["db", "migrate", "--database-url", "postgresql://postgres@127.0.0.1:1/plant_data"], capsys)
    _assert_one_line(["db", "migrate"], code, err, {failure.UNREACHABLE})
    assert "127.0.0.1:1/plant_data" in err and "127.0.0.1:1/postgres" not in err


@pytest.mark.parametrize(("url", "want"), [("127.0.0.1:1883", failure.BAD_INPUT),
                                           ("mqtt://127.0.0.1:1", failure.UNREACHABLE)])
def test_broker_commands_fail_in_one_line(
    url: str, want: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_config import GOOD

    config = tmp_path / "plant.yaml"
    config.write_text(GOOD)
    monkeypatch.setenv("DATAFACTORY_MQTT_URL", url)
    for argv in (["gateways"], ["config", "diff", str(config)], ["config", "deploy", str(config)]):
        code, err = _run(argv, capsys)
        _assert_one_line(argv, code, err, {want})


def test_verbose_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["-v", "audit", "verify", "--database-url", CLOSED_DB], capsys)
    assert code == failure.UNREACHABLE and "Traceback" in err


def test_a_bug_is_not_dressed_up_as_an_expected_failure() -> None:
    """The boundary only knows expected failures: anything else is exit 70 with its traceback."""
    assert failure.describe(ZeroDivisionError("division by zero"))[0] == failure.BUG
    assert failure.describe(psycopg.errors.UndefinedTable("relation x does not exist"))[0] == failure.NOT_MIGRATED


def test_every_connecting_command_has_both_url_options() -> None:
    ctx = click.Context(cli)
    missing = []

    def walk(cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}".strip())
            return
        opts = {o for p in cmd.params for o in getattr(p, "opts", ())}
        if path not in OFFLINE and not {"--database-url", "--mqtt-url"} <= opts:
            missing.append(path)
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden and "--help" not in p.opts:
                assert p.help, f"{path} {p.opts}: option without help text"
                # One style for defaults, the one click's show_default prints: "[default: …]".
                assert not re.search(r"\(default|default [A-Z$]|Default:", p.help), f"{path} {p.opts}: {p.help!r}"

    for name in COMMANDS:
        sub = cli.get_command(ctx, name)
        assert sub is not None
        walk(sub, name)
    assert not missing, missing


def test_readme_lists_every_command() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    absent = [name for name in COMMANDS if f"`{name}" not in section]
    assert not absent, f"README's command list lacks {absent}"


def test_subcommand_options_of_analytics_are_honoured(capsys: pytest.CaptureFixture[str]) -> None:
    """``analytics run --enterprise X --database-url URL`` (options after the subcommand, as everywhere else):
    the URL is the one used — a closed port is unreachable, not the default database answering."""
    for sub in (["run"], ["backfill", "--from", "2026-10-01T00:00:00+00:00", "--to", "2026-10-02T00:00:00+00:00"]):
        argv = ["analytics", *sub, "--enterprise", "acme", "--database-url", CLOSED_DB]
        code, err = _run(argv, capsys)
        _assert_one_line(argv, code, err, {failure.UNREACHABLE})
        assert "127.0.0.1:1" in err


def test_an_invalid_config_is_bad_input_for_every_command_that_reads_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsources: [{kind: opcua}]\n")
    monkeypatch.setenv("DATAFACTORY_MQTT_URL", "mqtt://127.0.0.1:1")  # never reached: the file is checked first
    folder = tmp_path / "configs"  # one invalid config among valid ones
    folder.mkdir()
    (folder / "bad.yaml").write_text(bad.read_text())
    example = Path(__file__).parents[1] / "edge_configs" / "examples" / "opcua.yaml"
    (folder / "good.yaml").write_text(example.read_text())
    commands = (
        ["config", "diff", str(bad)], ["config", "deploy", str(bad)], ["gateway", "run", "--config", str(bad)],
        ["simulate", "run", "--config", str(bad)], ["grafana", "provision", "--configs", str(folder), "--out",
         str(tmp_path / "out")], ["grafana", "check", "--configs", str(folder), "--out", str(tmp_path / "out")],
    )
    for argv in commands:
        code, err = _run(argv, capsys)
        assert code == failure.BAD_INPUT, f"{argv}: exit {code}\n{err}"
        assert "Traceback" not in err
        assert "bad.yaml" in err and "error(s)" in err, err
        assert "  sources[0].security: required key is missing" in err.splitlines(), err
