"""The PostgreSQL data sources Grafana provisions: one per plant, one for the platform, one for the bureau.

Each plant's data source logs in as that plant's read-only role ``df_plant_<enterprise>_<site>`` (row-level
security shows it only its own plant); the platform one as the operator account; the bureau one as ``bureau``
(disclosure-controlled views only). Connection details and passwords are never written to the files: they are
``$__env{…}`` references that Grafana expands from its environment at start-up.

The plant and bureau data sources connect to ``DATAFACTORY_PG_READ_HOST``: a streaming replica when reads should be
off the primary (row-level security and the bureau's views replicate with the data), else the primary itself. The
platform data source always reads the primary: it shows the replicas' lag, which only the primary knows.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datafactory.config.loader import load_config
from datafactory.db.roles import BUREAU, plant_password_var, plant_role_name
from grafana.dashboards.plant_variables import PLANT_DATASOURCE_NAME_PREFIX
from grafana.model import PG_TYPE

HOST_VAR = "DATAFACTORY_PG_HOST"
READ_HOST_VAR = "DATAFACTORY_PG_READ_HOST"
DATABASE_VAR = "DATAFACTORY_PG_DATABASE"
PLATFORM_USER_VAR = "DATAFACTORY_PG_USER"
PLATFORM_PASSWORD_VAR = "DATAFACTORY_PG_PASSWORD"
BUREAU_PASSWORD_VAR = "DF_DB_BUREAU_PASSWORD"
PLATFORM_UID = "df-platform"
BUREAU_UID = "df-bureau"
_MAX_UID = 40  # Grafana rejects longer uids


@dataclass(frozen=True, slots=True)
class Datasource:
    uid: str
    name: str
    user: str  # a role name or an $__env{…} reference
    password_var: str
    is_default: bool = False
    host_var: str = READ_HOST_VAR

    def to_provisioning(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uid": self.uid,
            "type": PG_TYPE,
            "access": "proxy",
            "url": f"$__env{{{self.host_var}}}",
            "user": self.user,
            "isDefault": self.is_default,
            "editable": False,
            "jsonData": {
                "database": f"$__env{{{DATABASE_VAR}}}",
                "sslmode": "disable",  # compose's private network; set require/verify-full for remote databases
                "postgresVersion": 1500,
                "timescaledb": False,  # our SQL never uses time_bucket, so it runs on plain PostgreSQL too
                "maxOpenConns": 10,
                "maxIdleConns": 5,
                "connMaxLifetime": 14400,
            },
            "secureJsonData": {"password": f"$__env{{{self.password_var}}}"},
        }


@dataclass(frozen=True, slots=True)
class PlantRef:
    enterprise: str
    site: str


def plant_uid(plant: PlantRef) -> str:
    slug = re.sub(r"[^a-z0-9-]", "-", f"{plant.enterprise}-{plant.site}".lower())
    uid = f"df-plant-{slug}"
    if len(uid) <= _MAX_UID:
        return uid
    digest = hashlib.sha256(f"{plant.enterprise}/{plant.site}".encode()).hexdigest()[:8]
    return f"{uid[: _MAX_UID - 9]}-{digest}"


def plant_datasource(plant: PlantRef) -> Datasource:
    return Datasource(
        uid=plant_uid(plant),
        name=f"{PLANT_DATASOURCE_NAME_PREFIX}{plant.enterprise}/{plant.site}",
        user=plant_role_name(plant.enterprise, plant.site),
        password_var=plant_password_var(plant.enterprise, plant.site),
    )


def platform_datasource() -> Datasource:
    return Datasource(PLATFORM_UID, "datafactory platform", f"$__env{{{PLATFORM_USER_VAR}}}", PLATFORM_PASSWORD_VAR,
                      is_default=True, host_var=HOST_VAR)


def bureau_datasource() -> Datasource:
    return Datasource(BUREAU_UID, "datafactory bureau", BUREAU, BUREAU_PASSWORD_VAR)


def plants_from_configs(config_dir: Path) -> list[PlantRef]:
    """Every plant described by an edge config in ``config_dir`` (``*.yaml``), sorted, without duplicates."""
    plants = {PlantRef(cfg.enterprise.id, cfg.site.id)
              for cfg in (load_config(p) for p in sorted(config_dir.glob("*.yaml")))}
    return sorted(plants, key=lambda p: (p.enterprise, p.site))


def all_datasources(plants: list[PlantRef]) -> list[Datasource]:
    return [platform_datasource(), bureau_datasource(), *(plant_datasource(p) for p in plants)]
