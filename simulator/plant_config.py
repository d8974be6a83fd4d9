"""Build the ``PlantConfig`` that reads a simulated plant: one OPC-UA source for the machines, one MQTT JSON
source for the utility meter, and for a mixed plant (``FieldbusPlan``) a Modbus TCP and an S7 source for the
machines that speak those. ``edge_configs/demo-plant.yaml`` is this config for the demo layout and
``edge_configs/mixed-plant.yaml`` the mixed one; tests and the backfill of scaled plants build theirs here.
"""

from __future__ import annotations

from typing import Any

from datafactory.codes.credit_code import check_character
from datafactory.config.loader import validate_document
from datafactory.config.models import PlantConfig
from datafactory.contract.meanings import COUNTERS, Meaning
from simulator.fieldbus import (
    METER_BAUDRATE,
    METER_MAP,
    METER_UNIT,
    MODBUS,
    MODBUS_MAP,
    S7,
    FieldbusPlan,
    s7_address,
)
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
    fieldbus: FieldbusPlan | None = None,
    poll_interval_ms: float = 100,
) -> dict[str, Any]:
    """The plant config as a plain document (what the YAML file holds). Machines that ``fieldbus`` assigns to
    Modbus or S7 are read by those sources, polled every ``poll_interval_ms``."""
    plan = fieldbus or FieldbusPlan()
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
        if m.path in plan.protocols:
            continue
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
    if plan.meter_gateway_serial:
        meter_source = _rtu_meter_source(plan.meter_gateway_serial, poll_interval_ms)
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
            *_fieldbus_sources(layout, plan, poll_interval_ms),
        ],
    }


def _rtu_meter_source(serial_port: str, interval_ms: float) -> dict[str, Any]:
    """The utility meter on Modbus RTU (simulator.fieldbus.METER_MAP), read over ``serial_port``."""
    registers = [
        {"cell": METER_CELL, "signal": s.name, "meaning": str(s.meaning), "unit": s.unit, "unit_id": METER_UNIT,
         "table": "holding_register", "address": METER_MAP[s.name], "data_type": "float64"}
        for s in METER_SIGNALS
    ]  # fmt: skip
    return {
        "kind": "modbus", "id": "meter", "transport": "rtu", "serial_port": serial_port, "baudrate": METER_BAUDRATE,
        "parity": "N", "timeout_s": 1.0, "retries": 0,
        "poll_groups": [{"name": "default", "interval_ms": interval_ms}], "registers": registers,
    }  # fmt: skip


def _fieldbus_sources(layout: PlantLayout, plan: FieldbusPlan, interval_ms: float) -> list[dict[str, Any]]:
    """The Modbus and S7 sources reading the machines ``plan`` assigns to them (the map of simulator.fieldbus)."""
    registers: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for m in layout.machines:
        protocol = plan.protocols.get(m.path)
        for s in MACHINE_SIGNALS:
            binding = {"cell": m.path, "signal": s.name, "meaning": str(s.meaning), "unit": s.unit}
            if protocol == MODBUS:
                address, vtype = MODBUS_MAP[s.name]
                unit = plan.unit_id(layout, m.path)
                registers.append(
                    binding
                    | {"unit_id": unit, "table": "holding_register", "address": address, "data_type": vtype.value}
                )
            elif protocol == S7:
                items.append(binding | {"address": s7_address(plan.s7_db(layout, m.path), s.name)})
    sources: list[dict[str, Any]] = []
    if registers:
        sources.append({
            "kind": "modbus", "id": "modbus", "host": "127.0.0.1", "port": plan.modbus_port, "timeout_s": 1.0,
            "retries": 0, "poll_groups": [{"name": "default", "interval_ms": interval_ms}], "registers": registers,
        })  # fmt: skip
    if items:
        sources.append({
            "kind": "s7", "id": "plc", "host": "127.0.0.1", "port": plan.s7_port, "timeout_s": 2.0,
            "poll_groups": [{"name": "default", "interval_ms": interval_ms}], "items": items,
        })  # fmt: skip
    return sources


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
        if src.kind in (MODBUS, S7):
            state_cells.update(b.cell for b in src.signal_bindings() if b.signal == "state")
            continue
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
    layout = PlantLayout(tuple(machines), enterprise=ent.id, site=cfg.site.id, timezone=ent.timezone)
    _check_fieldbus_map(cfg, layout)
    return layout


def fieldbus_from_config(cfg: PlantConfig) -> FieldbusPlan:
    """Which machines of a plant config the simulator serves over Modbus / S7, and on which ports."""
    protocols: dict[str, str] = {}
    ports = {MODBUS: 0, S7: 0}
    for src in cfg.sources:
        if src.kind in (MODBUS, S7) and getattr(src, "transport", "tcp") == "tcp":  # machines, not an RTU meter
            ports[src.kind] = int(src.port)  # type: ignore[union-attr]
            protocols.update({b.cell: src.kind for b in src.signal_bindings() if b.signal == "state"})
    return FieldbusPlan(protocols, modbus_port=ports[MODBUS], s7_port=ports[S7])


def _check_fieldbus_map(cfg: PlantConfig, layout: PlantLayout) -> None:
    """Every Modbus register / S7 item of a simulated machine must be where the simulator writes it."""
    from datafactory.errors import ConfigError

    plan = fieldbus_from_config(cfg)
    expected = {
        d["cell"] + "/" + d["signal"]: d
        for d in (b for src in _fieldbus_sources(layout, plan, 100) for b in src.get("registers", src.get("items", [])))
    }
    keys = ("unit_id", "address", "data_type")
    problems: list[tuple[str, str]] = []
    for i, src in enumerate(cfg.sources):
        if src.kind not in (MODBUS, S7):
            continue
        for j, b in enumerate(src.signal_bindings()):
            want = expected.get(f"{b.cell}/{b.signal}")
            if want is None:
                continue
            got = {k: str(getattr(b, k)) for k in keys if k in want}
            if got != {k: str(want[k]) for k in keys if k in want}:
                problems.append((f"sources[{i}].{src.bindings_key}[{j}]", f"the simulator serves it at {want}"))
    if problems:
        raise ConfigError("simulated plant", problems)


def configured_meter_topic(cfg: PlantConfig) -> str | None:
    """The topic the config maps for the utility meter, if it has one."""
    from datafactory.config.models import MqttJsonSource

    for src in cfg.sources:
        if isinstance(src, MqttJsonSource):
            for m in src.mappings:
                if m.cell == METER_CELL:
                    return m.topic
    return None
