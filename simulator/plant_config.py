"""Build the ``PlantConfig`` that reads a simulated plant: one OPC-UA source for the machines, one MQTT JSON
source for the utility meter. ``edge_configs/demo-plant.yaml`` is this config for the demo layout; tests and the
backfill of scaled plants build theirs here.
"""

from __future__ import annotations

from typing import Any

from datafactory.codes.credit_code import check_character
from datafactory.config.loader import validate_document
from datafactory.config.models import PlantConfig
from datafactory.contract.meanings import COUNTERS, Meaning
from simulator.layout import MACHINE_SIGNALS, METER_CELL, METER_SIGNALS, METER_VALUE_PATHS, PlantLayout, node_id

CREDIT_CODE_BODY = "91441900MA51D2K7X"  # Dongguan (441900), enterprise; the check character is computed
CREDIT_CODE = CREDIT_CODE_BODY + check_character(CREDIT_CODE_BODY)
DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:4840/datafactory/sim/"


def meter_topic(prefix: str, layout: PlantLayout) -> str:
    """Topic on which the MQTT-native utility meter publishes, e.g. ``sim/demo-precision/utilities/main-meter``."""
    area, _line, cell = METER_CELL.split("/")
    return f"{prefix}/{layout.enterprise}/{area}/{cell}"


def plant_document(
    layout: PlantLayout,
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    topic_prefix: str = "sim",
    broker_url: str = "",
    gateway_id: str = "gw-1",
) -> dict[str, Any]:
    """The plant config as a plain document (what the YAML file holds)."""
    areas: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for m in layout.machines:
        cell = {
            "id": m.cell,
            "name": m.name,
            "machine_class": m.machine_class,
            "ideal_cycle_time_s": m.ideal_cycle_time_s,
            "target_rate_per_hour": m.target_rate_per_hour,
        }
        areas.setdefault(m.area, {}).setdefault(m.line, []).append(cell)
    m_area, m_line, m_cell = METER_CELL.split("/")
    areas.setdefault(m_area, {}).setdefault(m_line, []).append({"id": m_cell, "name": "Main utility meter"})
    nodes = []
    for m in layout.machines:
        for s in MACHINE_SIGNALS:
            node: dict[str, Any] = {
                "cell": m.path,
                "signal": s.name,
                "meaning": str(s.meaning),
                "unit": s.unit,
                "node_id": node_id(m.path, s.name),
            }
            if s.meaning in COUNTERS or s.meaning is Meaning.MACHINE_STATE:
                node["deadband"] = {"kind": "none"}
            nodes.append(node)
    topic = meter_topic(topic_prefix, layout)
    mappings = [
        {
            "cell": METER_CELL,
            "signal": s.name,
            "meaning": str(s.meaning),
            "unit": s.unit,
            "topic": topic,
            "value_path": METER_VALUE_PATHS[s.name],
            "timestamp_path": "ts",
            "timestamp_format": "epoch_ms",
        }
        for s in METER_SIGNALS
    ]
    meter_source: dict[str, Any] = {"kind": "mqtt_json", "id": "meter", "mappings": mappings}
    if broker_url:
        meter_source["broker_url"] = broker_url
    return {
        "version": 1,
        "enterprise": {
            "id": layout.enterprise,
            "name": "东莞市松山湖示例精密制造有限公司",
            "credit_code": CREDIT_CODE,
            "industry_code": "C3484",  # GB/T 4754-2017 class 3484: machined mechanical parts
            "town": "松山湖",
            "industrial_park": "松山湖高新技术产业开发区",
            "size_class": "medium",
            "ownership": "limited_liability",
            "timezone": layout.timezone,
        },
        "site": {"id": layout.site, "name": "Dongguan plant 1"},
        "gateway": {"id": gateway_id},
        "areas": [
            {"id": a, "lines": [{"id": ln, "cells": cells} for ln, cells in lines.items()]}
            for a, lines in areas.items()
        ],
        "sources": [
            {
                "kind": "opcua",
                "id": "sim",
                "endpoint": endpoint,
                "security": {"policy": "none", "mode": "none"},
                "nodes": nodes,
            },
            meter_source,
        ],
    }


def plant_config(layout: PlantLayout, **kwargs: Any) -> PlantConfig:
    """The validated plant config of a simulated layout (see ``plant_document`` for the options)."""
    return validate_document(plant_document(layout, **kwargs), source=f"simulated plant {layout.enterprise}")


def layout_from_config(cfg: PlantConfig) -> PlantLayout:
    """The simulated layout serving an existing plant config: every cell with a ``state`` node on an OPC-UA source
    becomes a machine (its ideal cycle time from the config). Raises ``ConfigError`` when a node id does not follow
    the simulator's scheme, because the gateway would then subscribe to nodes the simulator does not have."""
    from datafactory.config.models import OpcUaSource
    from datafactory.errors import ConfigError
    from simulator.layout import machine_spec

    problems: list[tuple[str, str]] = []
    state_cells: set[str] = set()
    for i, src in enumerate(cfg.sources):
        if not isinstance(src, OpcUaSource):
            continue
        for j, node in enumerate(src.nodes):
            expected = node_id(node.cell, node.signal)
            if node.node_id != expected:
                problems.append((f"sources[{i}].nodes[{j}].node_id", f"the simulator serves {expected!r} here"))
            if node.signal == "state":
                state_cells.add(node.cell)
    if problems:
        raise ConfigError("simulated plant", problems)
    machines = []
    for area in cfg.areas:
        for line in area.lines:
            position = 0
            for cell in line.cells:
                path = f"{area.id}/{line.id}/{cell.id}"
                if path not in state_cells:
                    continue
                position += 1
                machines.append(
                    machine_spec(
                        area.id, line.id, cell.id, position, ideal_cycle_time_s=cell.ideal_cycle_time_s, name=cell.name
                    )
                )
    ent = cfg.enterprise
    return PlantLayout(tuple(machines), enterprise=ent.id, site=cfg.site.id, timezone=ent.timezone)


def configured_meter_topic(cfg: PlantConfig) -> str | None:
    """The topic the config maps for the utility meter, if it has one."""
    from datafactory.config.models import MqttJsonSource

    for src in cfg.sources:
        if isinstance(src, MqttJsonSource):
            for m in src.mappings:
                if m.cell == METER_CELL:
                    return m.topic
    return None
