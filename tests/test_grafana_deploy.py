"""``datafactory grafana deploy`` against a tiny in-process HTTP server that answers like Grafana's API.

A PROTOCOL-LEVEL test, not a Grafana one: the fake implements just the endpoints grafana-client calls (folders by
uid, data sources by uid, POST /api/dashboards/db with overwrite) with Grafana's status codes (404 unknown uid,
409 duplicate create, 412 existing dashboard without overwrite), and records every request. It shows the deploy is
idempotent — a second run updates and never duplicates — and that secrets come from the environment.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from grafana.cli import grafana as grafana_cli
from grafana.dashboards import ALL
from grafana.datasources import PlantRef, all_datasources
from grafana.deploy import DeployError, GrafanaTarget, deploy

PLANTS = [PlantRef("demo-precision", "dongguan-1")]
ENV = {
    "DATAFACTORY_PG_HOST": "db:5432", "DATAFACTORY_PG_READ_HOST": "replica:5432",
    "DATAFACTORY_PG_DATABASE": "datafactory", "DATAFACTORY_PG_USER": "ops",
    "DATAFACTORY_PG_PASSWORD": "s3cret-platform", "DF_DB_BUREAU_PASSWORD": "s3cret-bureau",
    "DF_GRAFANA_PLANT_DEMO_PRECISION_DONGGUAN_1_PASSWORD": "s3cret-plant",
}


class FakeGrafana:
    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.rule_groups: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any] | None, str]] = []

    def handle(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        parts = path.removeprefix("/api/").split("/")
        if parts[0] == "folders":
            return self._folders(method, parts[1:], body)
        if parts[0] == "datasources":
            return self._datasources(method, parts[1:], body)
        if parts[:3] == ["v1", "provisioning", "folder"] and parts[4:5] == ["rule-groups"] and method == "PUT":
            # PUT replaces the whole group; Grafana refuses a group whose folder does not exist, or whose rules
            # name another folder or group than the path.
            folder, group = parts[3], parts[5]
            if folder not in self.folders:
                return 404, {"message": "folder does not exist"}
            if body is None or any(r.get("folderUID") != folder or r.get("ruleGroup") != group
                                   for r in body.get("rules", [])):
                return 400, {"message": "rule folder or group does not match the path"}
            self.rule_groups[(folder, group)] = body
            return 200, body
        if parts == ["dashboards", "db"] and method == "POST" and body is not None:
            dash = body["dashboard"]
            old = self.dashboards.get(dash["uid"])
            if old is not None and not body.get("overwrite"):
                return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
            version = 1 if old is None else old["version"] + 1
            self.dashboards[dash["uid"]] = {**dash, "version": version, "folderUid": body.get("folderUid")}
            return 200, {"uid": dash["uid"], "status": "success", "version": version}
        return 404, {"message": "Not found"}

    def _folders(self, method: str, rest: list[str], body: dict[str, Any] | None) -> tuple[int, Any]:
        if method == "POST" and body is not None:
            if body["uid"] in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "version": 1}
            return 200, self.folders[body["uid"]]
        uid = rest[0]
        if uid not in self.folders:
            return 404, {"message": "folder not found"}
        if method == "PUT" and body is not None:
            old = self.folders[uid]
            self.folders[uid] = {**old, "title": body["title"], "version": old["version"] + 1}
        return 200, self.folders[uid]

    def _datasources(self, method: str, rest: list[str], body: dict[str, Any] | None) -> tuple[int, Any]:
        if method == "POST" and body is not None:
            if body["uid"] in self.datasources:
                return 409, {"message": "data source with the same uid already exists"}
            self.datasources[body["uid"]] = body
            return 200, {"datasource": body, "message": "Datasource added"}
        uid = rest[1]
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        if method == "PUT" and body is not None:
            self.datasources[uid] = body
        return 200, self.datasources[uid]


@pytest.fixture
def fake() -> Iterator[tuple[FakeGrafana, str]]:
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.requests.append((self.command, self.path, body, self.headers.get("Authorization", "")))
            status, answer = state.handle(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_deploy_is_idempotent(fake: tuple[FakeGrafana, str]) -> None:
    state, url = fake
    target = GrafanaTarget.from_env(url, {"GRAFANA_TOKEN": "glsa_test"})
    first = deploy(target, PLANTS, env=ENV)
    n_sources = len(all_datasources(PLANTS))
    assert len(first.created) == 3 + n_sources and not first.skipped
    posts_after_first = sum(1 for m, p, _, _ in state.requests if m == "POST" and p != "/api/dashboards/db")

    second = deploy(target, PLANTS, env=ENV)
    assert second.created == [] and len(second.updated) == 3 + n_sources + len(ALL)
    posts_after_second = sum(1 for m, p, _, _ in state.requests if m == "POST" and p != "/api/dashboards/db")
    assert posts_after_second == posts_after_first  # the second run only updated (PUT) folders and data sources
    assert len(state.folders) == 3 and len(state.datasources) == n_sources and len(state.dashboards) == len(ALL)
    assert all(d["version"] == 2 for d in state.dashboards.values())
    assert all(auth == "Bearer glsa_test" for *_, auth in state.requests)
    assert {d["folderUid"] for d in state.dashboards.values()} == {"df-folder-plant", "df-folder-platform",
                                                                   "df-folder-bureau"}
    plant = next(d for d in state.datasources.values() if d["user"].startswith("df_plant_"))
    assert plant["secureJsonData"]["password"] == "s3cret-plant" and plant["url"] == "replica:5432"
    assert state.datasources["df-bureau"]["url"] == "replica:5432"  # reads off the primary
    assert state.datasources["df-platform"]["url"] == "db:5432"  # the replicas' lag is known only there
    assert "$__env" not in json.dumps(list(state.datasources.values()))


def test_missing_password_skips_that_datasource(fake: tuple[FakeGrafana, str]) -> None:
    state, url = fake
    env = {k: v for k, v in ENV.items() if k != "DF_DB_BUREAU_PASSWORD"}
    report = deploy(GrafanaTarget(url, ("admin", "pw")), PLANTS, env=env)
    assert report.skipped == ["datasource df-bureau: DF_DB_BUREAU_PASSWORD not set"]
    assert "df-bureau" not in state.datasources and len(state.dashboards) == len(ALL)
    assert all(auth.startswith("Basic ") for *_, auth in state.requests)


def test_without_a_replica_every_datasource_reads_the_primary(fake: tuple[FakeGrafana, str]) -> None:
    state, url = fake
    env = {k: v for k, v in ENV.items() if k != "DATAFACTORY_PG_READ_HOST"}
    report = deploy(GrafanaTarget(url, ("admin", "pw")), PLANTS, env=env)
    assert report.skipped == []
    assert {d["url"] for d in state.datasources.values()} == {"db:5432"}


def test_errors_name_the_grafana(fake: tuple[FakeGrafana, str]) -> None:
    _, url = fake
    with pytest.raises(DeployError, match="GRAFANA_TOKEN"):
        GrafanaTarget.from_env(url, {})
    with pytest.raises(DeployError, match=r"127\.0\.0\.1:1\b"):
        deploy(GrafanaTarget("http://127.0.0.1:1", "t"), PLANTS, env=ENV)


def test_cli_deploy(fake: tuple[FakeGrafana, str], monkeypatch: pytest.MonkeyPatch) -> None:
    state, url = fake
    for key, value in {**ENV, "GRAFANA_TOKEN": "glsa_cli"}.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(grafana_cli, ["deploy", "--url", url])
    assert result.exit_code == 0, result.output
    assert "created" in result.output and len(state.dashboards) == len(ALL)


def test_alert_rules_are_deployed_as_one_group_per_plant(fake: tuple[FakeGrafana, str]) -> None:
    from grafana import alert_rules
    from grafana.provision import DEFAULT_CONFIGS, plant_configs

    state, url = fake
    target = GrafanaTarget.from_env(url, {"GRAFANA_TOKEN": "glsa_test"})
    configs = plant_configs(DEFAULT_CONFIGS)
    for _ in range(2):  # twice: the group is replaced, never duplicated
        report = deploy(target, PLANTS, env=ENV, configs=configs)
    assert any(u.startswith("alert rule group df-plant-demo-precision-dongguan-1") for u in report.updated)
    file_groups = alert_rules.document(configs)["groups"]
    assert set(state.rule_groups) == {(alert_rules.FOLDER_UID, g["name"]) for g in file_groups}
    assert state.folders[alert_rules.FOLDER_UID]["title"] == alert_rules.FOLDER
    for g in file_groups:
        sent = state.rule_groups[(alert_rules.FOLDER_UID, g["name"])]
        assert sent["interval"] == 60
        assert [r["uid"] for r in sent["rules"]] == [r["uid"] for r in g["rules"]]
        for api_rule, file_rule in zip(sent["rules"], g["rules"], strict=True):  # the same queries and thresholds
            assert api_rule["data"] == file_rule["data"] and api_rule["for"] == file_rule["for"]
