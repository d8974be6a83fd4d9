"""The committed JSON Schema gives generic validators the right "best match" inside a tagged union.

Integrators see the schema through third-party validators (check-jsonschema on the command line and in
pre-commit, the YAML language server in editors), not through our loader. For each broken config below, the
best match of both check-jsonschema (its CLI) and jsonschema (in process) must name the real mistake — the
misspelt key, the missing key, the unknown kind — and not the failures of the other source kinds' branches.
The same configs also fail our own loader at the same key path, so the two views agree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from datafactory.config import load_config_text
from datafactory.config.schema import SCHEMA_PATH, plant_config_schema
from datafactory.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "edge_configs" / "examples"


def _example(kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{kind}.yaml").read_text(encoding="utf-8"))
    return doc


def _typo_in_modbus(doc: dict[str, Any]) -> None:
    doc["sources"][0]["baud_rate"] = 9600


def _missing_host_in_s7(doc: dict[str, Any]) -> None:
    del doc["sources"][0]["host"]


def _bad_table_in_modbus_register(doc: dict[str, Any]) -> None:
    doc["sources"][0]["registers"][0]["table"] = "holding_registers"


def _unknown_kind(doc: dict[str, Any]) -> None:
    doc["sources"][0]["kind"] = "modbus_tcp"


def _username_auth_without_password_env(doc: dict[str, Any]) -> None:
    doc["sources"][0]["auth"] = {"kind": "username", "username_env": "OPC_USER"}


def _typo_in_mqtt_mapping(doc: dict[str, Any]) -> None:
    doc["sources"][0]["mappings"][0]["valuepath"] = "x"


# (example, breakage, JSON path of the best match, words its message must contain, loader key path)
CASES = [
    ("modbus", _typo_in_modbus, "$.sources[0]", ["('baud_rate' was unexpected)"], "sources[0].baud_rate"),
    ("s7", _missing_host_in_s7, "$.sources[0]", ["'host' is a required property"], "sources[0].host"),
    ("modbus", _bad_table_in_modbus_register, "$.sources[0].registers[0].table", ["holding_registers"],
     "sources[0].registers[0].table"),
    ("opcua", _unknown_kind, "$.sources[0].kind", ["modbus_tcp", "opcua", "s7"], "sources[0]"),
    ("opcua", _username_auth_without_password_env, "$.sources[0].auth", ["'password_env' is a required property"],
     "sources[0].auth.password_env"),
    ("mqtt_json", _typo_in_mqtt_mapping, "$.sources[0].mappings[0]", ["valuepath"], "sources[0].mappings[0]"),
]
IDS = [case[1].__name__.strip("_") for case in CASES]


def _broken(kind: str, breakage: Any) -> dict[str, Any]:
    doc = _example(kind)
    assert doc["sources"][0]["kind"] == kind
    breakage(doc)
    return doc


def _json_path(error: jsonschema.ValidationError) -> str:
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def test_committed_schema_has_no_bare_discriminator() -> None:
    """``discriminator`` is OpenAPI, not JSON Schema: generic validators ignore it, so it must not be relied on."""
    text = SCHEMA_PATH.read_text(encoding="utf-8")
    assert '"discriminator"' not in text
    jsonschema.Draft202012Validator.check_schema(json.loads(text))


@pytest.mark.parametrize("kind", sorted(p.stem for p in EXAMPLES.glob("*.yaml")))
def test_examples_are_valid_for_a_third_party_validator(kind: str) -> None:
    validator = jsonschema.Draft202012Validator(plant_config_schema())
    assert list(validator.iter_errors(_example(kind))) == []


@pytest.mark.parametrize(("kind", "breakage", "where", "words", "key"), CASES, ids=IDS)
def test_jsonschema_best_match_names_the_real_error(
    kind: str, breakage: Any, where: str, words: list[str], key: str
) -> None:
    doc = _broken(kind, breakage)
    validator = jsonschema.Draft202012Validator(plant_config_schema())
    best = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    assert best is not None
    assert _json_path(best) == where, best.message
    for word in words:
        assert word in best.message, best.message
    assert "was expected" not in best.message  # not another kind's branch
    # Our own loader names the same place.
    with pytest.raises(ConfigError) as exc:
        load_config_text(yaml.safe_dump(doc, allow_unicode=True))
    assert any(path.startswith(key) for path, _ in exc.value.problems), exc.value.problems


def _check_jsonschema() -> str:
    found = shutil.which("check-jsonschema") or str(Path(sys.executable).with_name("check-jsonschema"))
    if not Path(found).exists():
        pytest.fail("check-jsonschema is not installed: pip install check-jsonschema (it is a dev dependency)")
    return found


def test_check_jsonschema_cli_best_match_names_the_real_error(tmp_path: Path) -> None:
    files = []
    for name, (kind, breakage, *_rest) in zip(IDS, CASES, strict=True):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(_broken(kind, breakage), allow_unicode=True), encoding="utf-8")
        files.append(path)
    proc = subprocess.run(  # one run for every file: the CLI takes seconds to start
        [_check_jsonschema(), "--no-cache", "--schemafile", str(SCHEMA_PATH), *map(str, files)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 1, report
    assert "is not valid under any of the given schemas" not in report, report
    assert "was expected" not in report, report
    for path, (_kind, _breakage, where, words, _key) in zip(files, CASES, strict=True):
        # The line check-jsonschema leads with for this file (its best match) names the real place and mistake.
        first = next(line for line in report.splitlines() if f"{path}::$" in line)
        assert first.split("::", 1)[1].startswith(f"{where}:"), report
        for word in words:
            assert word in first, report


def test_without_the_rewrite_the_best_match_is_another_branch() -> None:
    """The attack the rewrite protects against: pydantic's own schema sends the validator down every branch."""
    from datafactory.config.models import PlantConfig

    doc = _broken("modbus", _typo_in_modbus)
    best = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(PlantConfig.model_json_schema())
                                            .iter_errors(doc))
    assert best is not None
    assert "('baud_rate' was unexpected)" not in best.message, best.message


def test_check_jsonschema_accepts_every_example(tmp_path: Path) -> None:
    plants = [str(ROOT / "edge_configs" / name) for name in ("demo-plant.yaml", "mixed-plant.yaml")]
    files = [*sorted(str(p) for p in EXAMPLES.glob("*.yaml")), *plants]
    proc = subprocess.run(
        [_check_jsonschema(), "--no-cache", "--schemafile", str(SCHEMA_PATH), *files],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
