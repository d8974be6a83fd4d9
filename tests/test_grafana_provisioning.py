"""The committed provisioning tree is current and valid for Grafana's file provisioning.

- it equals a fresh render of the dashboard code (fails when someone edits a dashboard module and forgets
  ``datafactory grafana provision``, or edits the JSON by hand);
- datasources/dashboards YAML have apiVersion 1; providers point inside the directory compose.yaml mounts;
- every dashboard validates against ``grafana/schema/dashboard.schema.json`` (the subset of Grafana's dashboard
  model we emit), panels do not overlap, and every data source, dashboard link and data link resolves;
- no secret is written: passwords and connection details are $__env{…} references.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from datafactory.db.roles import plant_role_name
from grafana import provision
from grafana.cli import grafana as grafana_cli
from grafana.dashboards import ALL
from grafana.datasources import plants_from_configs

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / "grafana" / "provisioning"
SCHEMA = json.loads((REPO / "grafana" / "schema" / "dashboard.schema.json").read_text())


def _dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((TREE / "dashboards" / "json").rglob("*.json"))]


def _datasources() -> list[dict[str, Any]]:
    doc = yaml.safe_load((TREE / "datasources" / "datafactory.yaml").read_text())
    assert doc["apiVersion"] == 1
    return list(doc["datasources"])


def test_committed_tree_is_current() -> None:
    stale = provision.stale_files(TREE, provision.render())
    assert not stale, f"run `datafactory grafana provision`: stale {stale}"


def test_stale_detection_and_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(grafana_cli, ["provision", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(grafana_cli, ["check", "--out", str(tmp_path)]).exit_code == 0
    target = tmp_path / provision.dashboard_path(ALL[0])
    target.write_text(target.read_text().replace('"Plant overview"', '"Edited in the UI"'))
    (tmp_path / "dashboards" / "json" / "plant" / "leftover.json").write_text("{}")
    result = runner.invoke(grafana_cli, ["check", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert provision.dashboard_path(ALL[0]) in result.output and "leftover.json" in result.output
    runner.invoke(grafana_cli, ["provision", "--out", str(tmp_path)])
    assert not (tmp_path / "dashboards" / "json" / "plant" / "leftover.json").exists()
    assert provision.stale_files(tmp_path, provision.render()) == []


def test_providers_match_the_compose_mount() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    mounts = [v.split(":") for v in compose["services"]["grafana"]["volumes"] if isinstance(v, str)]
    host, container = next((m[0], m[1]) for m in mounts if m[1] == provision.CONTAINER_ROOT)
    assert (REPO / host).resolve() == TREE.resolve()
    doc = yaml.safe_load((TREE / "dashboards" / "datafactory.yaml").read_text())
    assert doc["apiVersion"] == 1
    folders: set[str] = set()
    for provider in doc["providers"]:
        assert provider["type"] == "file"
        path = provider["options"]["path"]
        assert path.startswith(container + "/")
        local = TREE / path.removeprefix(container + "/")
        assert local.is_dir() and list(local.glob("*.json")), f"{path}: no dashboards"
        folders.add(provider["folderUid"])
    assert len(folders) == len(doc["providers"])  # one folder per provider


def test_datasources_one_per_plant_and_no_secrets() -> None:
    sources = _datasources()
    uids = [d["uid"] for d in sources]
    assert len(set(uids)) == len(uids)
    plants = plants_from_configs(REPO / "edge_configs")
    assert plants, "the demo plant config is in edge_configs/"
    users = {d["user"] for d in sources}
    for plant in plants:
        assert plant_role_name(plant.enterprise, plant.site) in users
    assert "bureau" in users
    assert sum(1 for d in sources if d.get("isDefault")) == 1
    for d in sources:
        assert d["type"] == "grafana-postgresql-datasource"
        assert len(d["uid"]) <= 40
        assert re.fullmatch(r"\$__env\{\w+\}", d["secureJsonData"]["password"]), d["name"]
        assert d["url"].startswith("$__env{") and d["jsonData"]["database"].startswith("$__env{")
        assert set(d["secureJsonData"]) == {"password"}


def test_dashboards_validate_against_the_schema() -> None:
    dashboards = _dashboards()
    assert {d["uid"] for d in dashboards} == {d.uid for d in ALL}
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for dash in dashboards:
        errors = sorted(validator.iter_errors(dash), key=lambda e: list(e.path))
        assert not errors, f"{dash['uid']}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def test_schema_rejects_what_grafana_would() -> None:
    """The schema is not vacuous: typical breakages are caught."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    good = _dashboards()[0]
    broken = [
        {**good, "schemaVersion": 30},
        {**good, "panels": [{**good["panels"][1], "type": "graph-old"}]},
        {**good, "panels": [{**good["panels"][1], "gridPos": {"x": 20, "y": 0, "w": 30, "h": 4}}]},
        {**good, "panels": [{**good["panels"][1], "targets": [{"refId": "A", "format": "table"}]}]},
    ]
    for doc in broken:
        assert list(validator.iter_errors(doc)), "schema accepted a broken dashboard"


def _cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
    g = panel["gridPos"]
    return {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}


def test_layout_and_references_resolve() -> None:
    sources = {d["uid"]: d for d in _datasources()}
    uids = {d.uid for d in ALL}
    for dash in _dashboards():
        taken: set[tuple[int, int]] = set()
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        for panel in dash["panels"]:
            cells = _cells(panel)
            assert not cells & taken, f"{dash['uid']}: panel {panel['title']!r} overlaps another"
            taken |= cells
            if panel["type"] == "row":
                continue
            for ref in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
                _assert_datasource_exists(ref["uid"], variables, sources)
            for link in panel["fieldConfig"]["defaults"]["links"]:
                _assert_link_target(link["url"], uids)
            for target in panel["targets"]:
                used = set(re.findall(r"\$\{?(\w+)", target["rawSql"]))
                missing = {u for u in used if not u.startswith("__")} - set(variables)
                assert not missing, f"{dash['uid']}/{panel['title']}: undefined variables {missing}"
        for link in dash["links"]:
            _assert_link_target(link["url"], uids)


def _assert_datasource_exists(uid: str, variables: dict[str, Any], sources: dict[str, Any]) -> None:
    match = re.fullmatch(r"\$\{(\w+)\}", uid)
    if not match:
        assert uid in sources, f"data source {uid} is not provisioned"
        return
    var = variables[match[1]]
    assert var["type"] == "datasource"
    regex = var["regex"].strip("/")
    assert any(re.search(regex, d["name"]) for d in sources.values()), f"{regex} matches no data source"
    # …and never the platform or bureau ones, which would bypass the plant's row-level security.
    assert not any(re.search(regex, sources[u]["name"]) for u in ("df-platform", "df-bureau") if u in sources)


def _assert_link_target(url: str, uids: set[str]) -> None:
    match = re.match(r"/d/([\w-]+)/", url)
    assert match and match[1] in uids, f"link {url} points to no generated dashboard"


@pytest.mark.parametrize("dash", ALL, ids=[d.uid for d in ALL])
def test_panels_have_units_or_mappings(dash: Any) -> None:
    """Read at a glance: every numeric panel says what its numbers are (a unit, or value mappings)."""
    for panel in dash.panels():
        if panel.kind in ("timeseries", "stat", "gauge", "bargauge", "barchart", "piechart"):
            assert panel.unit or panel.overrides or panel.mappings or panel.decimals is not None, panel.title
