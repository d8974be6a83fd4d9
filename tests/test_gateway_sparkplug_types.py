"""Declared types learned from Sparkplug births (``gateway.sparkplug_metrics``): no network, the table alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datafactory.config.models import SparkplugSource
from datafactory.contract.values import SignalType
from gateway.sparkplug_metrics import MetricTable
from gateway.sparkplug_proto import BOOLEAN, DOUBLE, INT8, INT64, STRING, UINT64, Payload
from gateway.sparkplug_state import DeviceState

CELL = "assembly/line-1/asm-01"


def _source(**extra: Any) -> SparkplugSource:
    def metric(name: str, **kw: Any) -> dict[str, Any]:
        return {"edge_node": "n1", "metric": name, "cell": CELL, "signal": name.lower(), "meaning": "generic"} | kw

    metrics = [metric("Count"), metric("Big"), metric("Flag"), metric("Name"), metric("Temp"),
               metric("Small", scale=0.1), metric("Declared", signal_type="float64")]  # fmt: skip
    doc = {"kind": "sparkplug", "id": "spb", "group_id": "g", "metrics": metrics}
    return SparkplugSource.model_validate(doc | extra)


def _birth() -> Payload:
    p = Payload(timestamp=1_700_000_000_000, seq=0)
    p.metrics.add(name="Count", alias=1, datatype=INT8, int_value=(1 << 32) - 1)
    p.metrics.add(name="Big", alias=2, datatype=UINT64, long_value=(1 << 64) - 1)
    p.metrics.add(name="Flag", alias=3, datatype=BOOLEAN, boolean_value=True)
    p.metrics.add(name="Name", alias=4, datatype=STRING, string_value="A-17")
    p.metrics.add(name="Temp", alias=5, datatype=DOUBLE, double_value=0.5)
    p.metrics.add(name="Small", alias=6, datatype=INT64, long_value=7)
    p.metrics.add(name="Declared", alias=7, datatype=INT64, long_value=(1 << 53) + 1)
    return p


def _types(table: MetricTable) -> dict[str, SignalType]:
    return {b.signal: b.declared_type() for b in table.bindings()}


def test_a_birth_declares_each_binding_by_its_datatype_and_values_stay_exact(tmp_path: Path) -> None:
    table = MetricTable(_source(), types_file=tmp_path / "types.json")
    assert set(_types(table).values()) == {SignalType.FLOAT64}  # before any birth: the config's natural type
    result = table.decode("n1", "", DeviceState(), _birth(), 0, birth=True)
    assert result.meta_changed
    assert _types(table) == {"count": SignalType.INT64, "big": SignalType.UINT64, "flag": SignalType.BOOL,
                             "name": SignalType.STRING, "temp": SignalType.FLOAT64,
                             "small": SignalType.FLOAT64,  # scaled by 0.1: a float64, as for Modbus and S7
                             "declared": SignalType.FLOAT64}  # fmt: skip # the config's signal_type wins
    values = {s.signal: s.value for _, s in result.out}
    assert values["count"] == -1 and values["big"] == (1 << 64) - 1 and values["flag"] is True
    assert values["name"] == "A-17" and type(values["small"]) is float
    assert values["declared"] != (1 << 53) + 1  # declared float64 by the config: rounded there, by choice

    again = table.decode("n1", "", DeviceState(), _birth(), 0, birth=True)
    assert not again.meta_changed  # the same types: the meta is not republished

    # A restarted gateway announces the learned types before the first birth (buffered data may precede it).
    restarted = MetricTable(_source(), types_file=tmp_path / "types.json")
    assert _types(restarted) == _types(table)


def test_a_changed_datatype_changes_the_declared_type_again(tmp_path: Path) -> None:
    table = MetricTable(_source(), types_file=tmp_path / "types.json")
    table.decode("n1", "", DeviceState(), _birth(), 0, birth=True)
    birth = _birth()
    birth.metrics[1].datatype = DOUBLE
    birth.metrics[1].double_value = 2.5
    assert table.decode("n1", "", DeviceState(), birth, 0, birth=True).meta_changed
    assert _types(table)["big"] is SignalType.FLOAT64
    assert _types(MetricTable(_source(), types_file=tmp_path / "types.json"))["big"] is SignalType.FLOAT64


def test_learned_metrics_are_typed_too(tmp_path: Path) -> None:
    table = MetricTable(_source(learn={"cell": CELL}), types_file=None)
    birth = _birth()
    birth.metrics.add(name="Serial", alias=8, datatype=UINT64, long_value=(1 << 63) + 5)
    result = table.decode("n1", "", DeviceState(), birth, 0, birth=True)
    assert _types(table)["n1_serial"] is SignalType.UINT64
    assert ("n1_serial", (1 << 63) + 5) in {(s.signal, s.value) for _, s in result.out}
