"""One module per dashboard; ``ALL`` is the list the provisioner writes and the deployer uploads.
Part of the ``grafana`` service: imports the core and ``grafana.*``; no other service imports it.
"""

from __future__ import annotations

from grafana.dashboards import bureau, energy, machine_detail, maintenance, plant_overview, platform_health
from grafana.model import Dashboard

ALL: tuple[Dashboard, ...] = (
    plant_overview.DASHBOARD,
    machine_detail.DASHBOARD,
    energy.DASHBOARD,
    maintenance.DASHBOARD,
    platform_health.DASHBOARD,
    bureau.DASHBOARD,
)
# Plant and platform dashboards read the per-plant tables; the bureau's read only its disclosure-controlled views
# (tested and benchmarked against data of their own).
PLANT_AND_PLATFORM: tuple[Dashboard, ...] = tuple(d for d in ALL if d.folder in ("plant", "platform"))
BUREAU: tuple[Dashboard, ...] = tuple(d for d in ALL if d.folder == "bureau")
