"""The layering rule of docs/architecture.md, checked on every import statement of the repository.

- core (``datafactory``) imports no other package of ours;
- services (``gateway``, ``ingest``, ``analytics``, ``grafana``, ``bureau``, ``simulator``, ``ops``) import the core
  and themselves, never each other and never the application layer;
- the application layer (``app``) is the only package that may import services: it composes them;
- ``tests`` and ``benchmarks`` may import anything (they are not checked).

Every import counts: module level, inside functions (the lazy imports of commands), under ``TYPE_CHECKING``, and
``importlib.import_module("…")`` with a literal name. The checker is run on the repository and, so the test can
fail, on a synthetic tree with deliberate back-edges.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = frozenset({"datafactory"})
SERVICES = frozenset({"gateway", "ingest", "analytics", "grafana", "bureau", "simulator", "ops", "alerting"})
APPLICATION = frozenset({"app"})
LAYERED = CORE | SERVICES | APPLICATION


@dataclass(frozen=True, order=True)
class Violation:
    file: str
    line: int
    importer: str
    imported: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} must not import {self.imported}"


def allowed(importer: str, imported: str) -> bool:
    """May a module of top-level package ``importer`` import top-level package ``imported``?"""
    if imported not in LAYERED or imported == importer:
        return True  # the standard library, third-party packages, or itself
    if importer in APPLICATION:
        return True
    if importer in SERVICES:
        return imported in CORE
    return False  # the core imports nothing of ours


def _imported_names(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, package if node.level else node.module or ""))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def check(root: Path) -> list[Violation]:
    """Every import in the layered packages under ``root`` that breaks the rule."""
    violations: list[Violation] = []
    for package in sorted(LAYERED):
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, name in _imported_names(tree, package):
                top = name.split(".")[0]
                if not allowed(package, top):
                    violations.append(Violation(str(path.relative_to(root)), line, package, top))
    return sorted(violations)


def test_the_repository_keeps_its_layers() -> None:
    violations = check(ROOT)
    assert violations == [], "layering broken (docs/architecture.md):\n" + "\n".join(map(str, violations))


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_checker_reports_deliberate_back_edges(tmp_path: Path) -> None:
    # Allowed edges: service → core, app → service, app → core, a package → itself, third party, relative.
    _write(tmp_path, "datafactory/__init__.py", "")
    _write(tmp_path, "datafactory/errors.py", "import os\nimport psycopg\nfrom . import settings\n")
    _write(tmp_path, "ingest/worker.py", "from datafactory.errors import DataFactoryError\nfrom ingest import store\n")
    _write(tmp_path, "app/cli.py", "import gateway.cli\nfrom ops.backup import backup\nimport datafactory\n")
    # Back-edges: core → service (lazily, inside a function), core → app, service → service, service → app.
    _write(tmp_path, "datafactory/db/connect.py",
           "def deploy() -> None:\n    from gateway.deploy import deploy\n    deploy()\n")
    _write(tmp_path, "datafactory/pipeline.py", "import importlib\nCLI = importlib.import_module('app.cli')\n")
    _write(tmp_path, "analytics/run.py", "import json\n\nfrom ingest.worker import IngestWorker\n")
    _write(tmp_path, "ops/cli.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import app.harness\n")
    assert [str(v) for v in check(tmp_path)] == [
        "analytics/run.py:3: analytics must not import ingest",
        "datafactory/db/connect.py:2: datafactory must not import gateway",
        "datafactory/pipeline.py:2: datafactory must not import app",
        "ops/cli.py:3: ops must not import app",
    ]


@pytest.mark.parametrize(("importer", "imported", "ok"), [
    ("gateway", "datafactory", True), ("gateway", "ingest", False), ("bureau", "simulator", False),
    ("simulator", "bureau", False), ("datafactory", "ops", False), ("datafactory", "app", False),
    ("ops", "datafactory", True), ("app", "bureau", True), ("app", "ops", True), ("grafana", "app", False),
])
def test_the_rule_table(importer: str, imported: str, ok: bool) -> None:
    assert allowed(importer, imported) is ok


def test_every_installed_package_has_a_layer() -> None:
    """A new top-level package cannot escape the rule: pyproject's package list is exactly the layered set."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in include} == LAYERED
    scripts = pyproject["project"]["scripts"]
    assert scripts == {"datafactory": "app.cli.main:main"}  # the command line is the application layer


def test_every_package_says_what_lives_there_and_who_may_import_it() -> None:
    missing = []
    for package in sorted(LAYERED):
        for init in sorted((ROOT / package).rglob("__init__.py")):
            doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
            if "import" not in " ".join(doc.splitlines()[:3]):
                missing.append(str(init.relative_to(ROOT)))
    assert missing == [], f"package docstrings without a 'what may import it' line: {missing}"


def test_python_dash_m_app_is_the_command_line() -> None:
    import subprocess

    result = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "backup" in result.stdout and "city" in result.stdout
