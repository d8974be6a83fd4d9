"""Upload folders, data sources, dashboards and alert rules to a running Grafana over its HTTP API
(grafana-client), for deployments that cannot mount the provisioning directory.

Idempotent: folders and data sources are looked up by uid and created or updated; dashboards are posted by uid
with ``overwrite``, so a second deploy updates in place and never duplicates. The provisioned files say
``$__env{VAR}`` and Grafana expands that at start-up; the API does not, so deploy resolves the same variables from
its own environment and skips a data source whose password variable is unset (reported, not guessed).
Raises ``DeployError`` (naming the Grafana URL and the object) for any API failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from datafactory.config.models import PlantConfig
from datafactory.errors import DataFactoryError
from grafana import alert_rules
from grafana.dashboards import ALL
from grafana.datasources import HOST_VAR, READ_HOST_VAR, PlantRef, all_datasources
from grafana.model import Dashboard
from grafana.provision import FOLDERS, folder_of

_ENV_REF = re.compile(r"\$__env\{(\w+)\}")


class DeployError(DataFactoryError):
    """No credentials, or the Grafana API refused or failed a request."""


@dataclass(frozen=True, slots=True)
class GrafanaTarget:
    url: str
    credential: str | tuple[str, str]

    @classmethod
    def from_env(cls, url: str, env: Mapping[str, str]) -> GrafanaTarget:
        token = env.get("GRAFANA_TOKEN")
        if token:
            return cls(url, token)
        user, password = env.get("GRAFANA_USER"), env.get("GRAFANA_PASSWORD")
        if user and password:
            return cls(url, (user, password))
        raise DeployError(f"{url}: set GRAFANA_TOKEN (a service account token), or GRAFANA_USER and GRAFANA_PASSWORD")

    def api(self) -> GrafanaApi:
        return GrafanaApi.from_url(self.url, credential=self.credential)


@dataclass
class DeployReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"created {len(self.created)}, updated {len(self.updated)}, skipped {len(self.skipped)}"]
        lines += [f"  skipped {s}" for s in self.skipped]
        return "\n".join(lines)


def resolve_env(value: Any, env: Mapping[str, str], missing: set[str]) -> Any:
    """``$__env{VAR}`` references replaced from ``env``, recursively; unset names are added to ``missing``."""
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            if match[1] not in env:
                missing.add(match[1])
                return ""
            return env[match[1]]

        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: resolve_env(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, env, missing) for v in value]
    return value


def deploy(target: GrafanaTarget, plants: list[PlantRef], *, env: Mapping[str, str], datasources: bool = True,
           dashboards: tuple[Dashboard, ...] = ALL, configs: list[PlantConfig] | None = None) -> DeployReport:
    """``configs`` (plant configs) also upload their alert rules, one rule group per plant, replaced whole."""
    api = target.api()
    report = DeployReport()
    try:
        for folder in FOLDERS:
            if any(d.folder == folder.key for d in dashboards):
                _upsert_folder(api, folder.uid, folder.title, report)
        if datasources:
            # Without a replica the read data sources read the primary, as compose's default does.
            if HOST_VAR in env and READ_HOST_VAR not in env:
                env = {**env, READ_HOST_VAR: env[HOST_VAR]}
            for ds in all_datasources(plants):
                missing: set[str] = set()
                body = resolve_env(ds.to_provisioning(), env, missing)
                if missing:
                    report.skipped.append(f"datasource {ds.uid}: {', '.join(sorted(missing))} not set")
                    continue
                _upsert_datasource(api, ds.uid, body, report)
        for dash in dashboards:
            api.dashboard.update_dashboard({"dashboard": {**dash.to_json(), "id": None},
                                            "folderUid": folder_of(dash).uid, "overwrite": True,
                                            "message": "datafactory grafana deploy"})
            report.updated.append(f"dashboard {dash.uid}")
        groups = alert_rules.document(configs)["groups"] if configs else []
        if groups:
            _upsert_folder(api, alert_rules.FOLDER_UID, alert_rules.FOLDER, report)
        for group in groups:
            api.alertingprovisioning.update_rule_group(alert_rules.FOLDER_UID, group["name"],
                                                       alert_rules.api_group(group))
            report.updated.append(f"alert rule group {group['name']} ({len(group['rules'])} rules)")
    except GrafanaException as err:
        raise DeployError(f"{target.url}: Grafana API error {err.status_code}: {err.message}") from err
    except OSError as err:  # connection refused, DNS … (niquests errors derive from OSError)
        raise DeployError(f"{target.url}: cannot reach Grafana: {err}") from err
    return report


def _exists(call: Any) -> bool:
    try:
        call()
    except GrafanaClientError as err:
        if err.status_code == 404:
            return False
        raise
    return True


def _upsert_folder(api: GrafanaApi, uid: str, title: str, report: DeployReport) -> None:
    if _exists(lambda: api.folder.get_folder(uid)):
        api.folder.update_folder(uid, title=title, overwrite=True)
        report.updated.append(f"folder {uid}")
    else:
        api.folder.create_folder(title, uid=uid)
        report.created.append(f"folder {uid}")


def _upsert_datasource(api: GrafanaApi, uid: str, body: dict[str, Any], report: DeployReport) -> None:
    if _exists(lambda: api.datasource.get_datasource_by_uid(uid)):
        api.datasource.update_datasource_by_uid(uid, body)
        report.updated.append(f"datasource {uid}")
    else:
        api.datasource.create_datasource(body)
        report.created.append(f"datasource {uid}")
