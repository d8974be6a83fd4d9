"""One module per dashboard; ``ALL`` is the list the provisioner writes and the deployer uploads."""

from __future__ import annotations

from grafana.dashboards import energy, machine_detail, maintenance, plant_overview, platform_health
from grafana.model import Dashboard

ALL: tuple[Dashboard, ...] = (
    plant_overview.DASHBOARD,
    machine_detail.DASHBOARD,
    energy.DASHBOARD,
    maintenance.DASHBOARD,
    platform_health.DASHBOARD,
)
