"""``datafactory config init``: a commented starter config for every source kind that validates as written —
by our loader and by a third-party validator against the committed JSON Schema."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import failure
from app.cli.main import main
from datafactory.config import load_config
from datafactory.config.models import SOURCE_KINDS
from datafactory.config.schema import SCHEMA_PATH
from datafactory.config.starter import missing_kinds

KINDS = sorted(SOURCE_KINDS)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_every_registered_kind_has_a_starter() -> None:
    assert missing_kinds() == set()


@pytest.mark.parametrize("kinds", [[k] for k in KINDS] + [KINDS, []], ids=[*KINDS, "all", "default"])
def test_init_writes_a_commented_config_that_validates(
    kinds: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plant.yaml"
    code, said, err = _run(["config", "init", *kinds, "--out", str(out)], capsys)
    assert code == failure.OK, err
    assert "config validate" in said
    cfg = load_config(out)
    assert [s.kind for s in cfg.sources] == (kinds or ["opcua"])
    assert all(s.signal_bindings() for s in cfg.sources)
    text = out.read_text(encoding="utf-8")
    assert text.count("#") > 10  # commented for the integrator who edits it
    assert "yaml-language-server: $schema=" in text
    assert "REPLACE" not in text
    code, said, err = _run(["config", "validate", str(out)], capsys)
    assert code == failure.OK and ": ok (" in said, err


def test_starters_pass_check_jsonschema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = []
    for i, kinds in enumerate([*([k] for k in KINDS), *itertools.combinations(KINDS, 2)]):
        path = tmp_path / f"plant-{i}.yaml"
        code, _, err = _run(["config", "init", *kinds, "--out", str(path)], capsys)
        assert code == failure.OK, err
        files.append(str(path))
    checker = shutil.which("check-jsonschema") or str(Path(sys.executable).with_name("check-jsonschema"))
    proc = subprocess.run([checker, "--no-cache", "--schemafile", str(SCHEMA_PATH), *files],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for written in files:  # and two kinds side by side never bind one signal twice
        load_config(written)


def test_init_to_stdout_and_schema_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, said, _ = _run(["config", "init", "modbus"], capsys)
    assert code == failure.OK and "kind: modbus" in said
    ref = next(line for line in said.splitlines() if "$schema=" in line).split("$schema=", 1)[1]
    assert Path(ref).resolve() == SCHEMA_PATH.resolve()
    out = tmp_path / "sub" / "plant.yaml"
    out.parent.mkdir()
    _run(["config", "init", "--out", str(out)], capsys)
    rel = next(line for line in out.read_text().splitlines() if "$schema=" in line).split("$schema=", 1)[1]
    assert (out.parent / rel).resolve() == SCHEMA_PATH.resolve()  # relative to the file, as editors resolve it


def test_init_never_overwrites_and_refuses_unknown_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plant.yaml"
    out.write_text("my edited config\n", encoding="utf-8")
    code, _, err = _run(["config", "init", "--out", str(out)], capsys)
    assert code == failure.BAD_INPUT and "--force" in err.splitlines()[-1] and "Traceback" not in err
    assert out.read_text(encoding="utf-8") == "my edited config\n"
    code, _, err = _run(["config", "init", "--out", str(out), "--force"], capsys)
    assert code == failure.OK and load_config(out).sources
    code, _, err = _run(["config", "init", "profibus"], capsys)
    assert code == failure.BAD_INPUT and "profibus" in err.splitlines()[-1]
