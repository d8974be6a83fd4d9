"""The demo plant config: valid, and equal to what the simulator serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from datafactory.codes.credit_code import credit_code_problem
from datafactory.config.loader import load_config, validate_document
from datafactory.config.models import ModbusSource, MqttJsonSource, OpcUaSource
from datafactory.errors import ConfigError
from simulator import demo_layout, node_id, plant_document
from simulator.plant_config import configured_meter_topic, layout_from_config

DEMO = Path(__file__).resolve().parent.parent / "edge_configs" / "demo-plant.yaml"


def test_demo_config_validates_and_matches_the_simulated_layout():
    cfg = load_config(DEMO)
    assert yaml.safe_load(DEMO.read_text(encoding="utf-8")) == plant_document(demo_layout())
    assert credit_code_problem(cfg.enterprise.credit_code) is None
    assert (cfg.enterprise.id, cfg.site.id, cfg.enterprise.timezone) == (
        "demo-precision",
        "dongguan-1",
        "Asia/Shanghai",
    )
    assert set(cfg.cell_paths()) == {m.path for m in demo_layout().machines} | {"utilities/main/main-meter"}
    opcua = next(s for s in cfg.sources if isinstance(s, OpcUaSource))
    assert (opcua.security.policy.value, opcua.security.mode.value) == ("none", "none")
    assert len(opcua.nodes) == 64
    for n in opcua.nodes:
        assert n.node_id == node_id(n.cell, n.signal)
        if n.meaning.value in ("machine_state", "good_count", "reject_count", "total_count", "energy_kwh"):
            assert n.deadband.kind.value == "none"
    meter = next(s for s in cfg.sources if isinstance(s, MqttJsonSource))
    assert {(m.signal, m.value_path, m.topic) for m in meter.mappings} == {
        ("power", "kw", "sim/demo-precision/utilities/main-meter"),
        ("energy", "kwh", "sim/demo-precision/utilities/main-meter"),
    }
    assert "basic256sha256" in DEMO.read_text(encoding="utf-8")  # the production-security comment


def test_the_simulator_serves_the_machines_of_a_config():
    cfg = load_config(DEMO)
    assert layout_from_config(cfg) == demo_layout()
    assert configured_meter_topic(cfg) == "sim/demo-precision/utilities/main-meter"
    doc = plant_document(demo_layout(machines_per_line=2))
    doc["sources"][0]["nodes"][3]["node_id"] = "ns=2;s=Line1.Press01.Power"
    with pytest.raises(ConfigError, match=r"sources\[0\]\.nodes\[3\]\.node_id"):
        layout_from_config(validate_document(doc))


MIXED = DEMO.parent / "mixed-plant.yaml"


def test_mixed_config_is_the_simulators_mixed_plant_and_runs_only_in_real_time():
    """edge_configs/mixed-plant.yaml: OPC-UA, Modbus TCP (two units), S7 and MQTT, generated from the simulator's
    register map; ``simulate run --config`` serves it, and refuses a speed other than 1 (polled values are
    stamped by the gateway's clock)."""
    from click.testing import CliRunner

    from simulator.cli import simulate
    from simulator.fieldbus import FieldbusPlan
    from simulator.plant_config import fieldbus_from_config

    plan = FieldbusPlan.mixed_demo()
    assert yaml.safe_load(MIXED.read_text(encoding="utf-8")) == plant_document(
        demo_layout(), fieldbus=plan, poll_interval_ms=500
    )
    cfg = load_config(MIXED)
    assert sorted(s.kind for s in cfg.sources) == ["modbus", "mqtt_json", "opcua", "s7"]
    assert layout_from_config(cfg) == demo_layout()
    assert fieldbus_from_config(cfg) == plan
    modbus = next(s for s in cfg.sources if isinstance(s, ModbusSource))
    assert {r.unit_id for r in modbus.registers} == {1, 2}  # two devices behind one TCP gateway
    doc = plant_document(demo_layout(), fieldbus=plan)
    regs = next(s for s in doc["sources"] if s["kind"] == "modbus")["registers"]
    regs[4]["address"] = 8  # the simulator writes power at 7
    with pytest.raises(ConfigError, match=r"sources\[2\]\.registers\[4\]"):
        layout_from_config(validate_document(doc))
    result = CliRunner().invoke(simulate, ["run", "--config", str(MIXED), "--speed", "30", "--duration", "1"])
    assert result.exit_code == 2 and "--speed 1" in result.output


def test_the_modbus_sample_reads_the_meter_as_the_simulator_serves_it_on_rtu():
    """edge_configs/examples/modbus.yaml's energy meter is the simulator's RTU meter (simulator/fieldbus.py), the
    one the mixed plant's end-to-end test reads over a pseudo-terminal pair: same line settings, same registers."""
    from simulator.fieldbus import FieldbusPlan

    sample = yaml.safe_load((DEMO.parent / "examples" / "modbus.yaml").read_text(encoding="utf-8"))
    ours = next(s for s in sample["sources"] if s["id"] == "main-meter")
    doc = plant_document(demo_layout(), fieldbus=FieldbusPlan(meter_gateway_serial=ours["serial_port"]))
    served = next(s for s in doc["sources"] if s["id"] == "meter")
    keys = ("kind", "transport", "serial_port", "baudrate", "parity")
    assert {k: ours[k] for k in keys} == {k: served[k] for k in keys}
    assert ours["registers"] == served["registers"]
    assert "utilities/main/main-meter" in load_config(DEMO.parent / "examples" / "modbus.yaml").cell_paths()
