"""Folder subscriptions (every variable under a browse path) and ``opcua browse --emit-config`` with several cells,
against real asyncua servers and the real broker.

* the signal-name rule: relative browse path, slugged, prefixed, unique per cell;
* a folder picks up every variable under it that passes the glob and type filters, named by the rule, next to
  a listed node it must not collide with; values and meta arrive;
* the server restarts with a changed address space → on reconnect the gateway follows it (a new variable
  flows, a removed one is no longer subscribed);
* a browse path that is not there fails the source, naming what is there;
* ``--emit-config`` with several ``--cell``s binds a variable only to the cell named in its browse path.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from asyncua import ua
from click.testing import CliRunner

from app.cli.main import cli
from datafactory.config.loader import load_config_text
from datafactory.config.opcua_folders import folder_signal_name
from tests.support.gateway_env import GatewayThread, OpcUaTestServer, collect, free_port, opcua_source, plant

CELL = "press/line-1/press-01"


def test_folder_signal_names_follow_the_documented_rule() -> None:
    taken = {"state"}
    assert folder_signal_name("", "Spindle/Power", taken) == "spindle_power"
    assert folder_signal_name("", "State", taken) == "state_2"  # a listed node has 'state'
    assert folder_signal_name("p1_", "Spindle Motor/Temp (°C)", taken) == "p1_spindle_motor_temp_c"
    assert folder_signal_name("", "温度", taken) == "signal"
    long = folder_signal_name("", "x" * 80, taken)
    assert long == "x" * 64 and folder_signal_name("", "x" * 80, taken) == "x" * 62 + "_2"


def _server(port: int, layout: dict[str, Any]) -> OpcUaTestServer:
    """An asyncua server with ``layout`` under Objects/Plant: a dict is an object, anything else a variable
    (node id ns=2;s=<path joined by '.'>, its Python value's OPC-UA type)."""
    server = OpcUaTestServer(port, {}).start()

    async def build() -> None:
        ns = server.ns
        plant_node = await server.server.nodes.objects.get_child(f"{ns}:Plant")

        async def add(parent: Any, tree: dict[str, Any], prefix: str) -> None:
            for name, value in tree.items():
                path = f"{prefix}.{name}" if prefix else name
                if isinstance(value, dict):
                    await add(await parent.add_object(f"ns={ns};s={path}", name), value, path)
                else:
                    server.nodes[path] = await parent.add_variable(f"ns={ns};s={path}", name, value)

        await add(plant_node, layout, "")

    server.call(build())
    return server


def _source(endpoint: str, **folder: Any) -> dict:
    return opcua_source(
        endpoint,
        [{"node_id": "ns=2;s=Press01.Alarm", "cell": CELL, "signal": "state", "meaning": "generic"}],
        keepalive_timeout_s=3,
        folders=[{"browse_path": "Plant/Press01", "cell": CELL, "depth": 3, **folder}],
    )


LAYOUT = {
    "Press01": {
        "Spindle": {"Power": 12.5, "Speed": 3000.0},
        "State": ua.Variant(100, ua.VariantType.Int32),
        "Recipe": "A-17",
        "Alarm": 0.0,
    },
    "Press02": {"Power": 7.0},
}


def _latest(col) -> dict[str, object]:
    return {s.signal: s.value for _, s in col.data_samples()}


@pytest.mark.integration
def test_a_folder_subscribes_every_matching_variable_and_follows_a_changed_server(tmp_path, mqtt_url, enterprise):
    port = free_port()
    server = _server(port, LAYOUT)
    src = _source(server.endpoint, data_types=["Double", "Int32"])
    cfg = plant(enterprise, sources=[src], cells=[CELL])
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/#") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gt,
        ):
            want = {"state", "spindle_power", "spindle_speed", "state_2"}
            assert col.wait_for(lambda: set(_latest(col)) >= want), _latest(col)
            meta = orjson.loads(col.last("/meta") or b"{}")
            assert {s["name"] for s in meta["signals"]} == want  # Recipe (String) filtered out, Press02 not under
            by_name = {s["name"]: s for s in meta["signals"]}
            assert by_name["spindle_power"]["description"] == "Plant/Press01/Spindle/Power (Double)"
            assert _latest(col)["state_2"] == 100.0 and _latest(col)["spindle_power"] == 12.5
            server.write("Press01.Spindle.Power", 13.0)
            assert col.wait_for(lambda: _latest(col)["spindle_power"] == 13.0)

            # The server restarts with a changed program: Speed gone, Torque added.
            server.close()
            changed = {"Press01": {"Spindle": {"Power": 14.0, "Torque": 55.0}, "Alarm": 0.0}}
            server = _server(port, changed)
            assert col.wait_for(lambda: "spindle_torque" in _latest(col), timeout=30), gt.gateway.source_states()
            assert col.wait_for(lambda: _latest(col)["spindle_power"] == 14.0)
            signals = {b.signal for b in gt.gateway._sources["plc"].adapter.bindings()}
            assert signals == {"state", "spindle_power", "spindle_torque"}
            meta = orjson.loads(col.last("/meta") or b"{}")
            assert {"spindle_torque", "spindle_power"} <= {s["name"] for s in meta["signals"]}
            server.write("Press01.Spindle.Torque", 56.0)
            assert col.wait_for(lambda: _latest(col)["spindle_torque"] == 56.0)
    finally:
        server.close()


@pytest.mark.integration
def test_a_folder_that_is_not_there_fails_the_source_naming_what_is(tmp_path, mqtt_url, enterprise) -> None:
    server = _server(free_port(), LAYOUT)
    src = _source(server.endpoint)
    src["folders"][0]["browse_path"] = "Plant/Press09"
    cfg = plant(enterprise, sources=[src], cells=[CELL])
    try:
        with GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gt:
            deadline = time.monotonic() + 15
            while gt.gateway.source_states().get("plc") != "failed":
                assert time.monotonic() < deadline, gt.gateway.source_states()
                time.sleep(0.2)
            state = gt.gateway._sources["plc"].state
            error, attempts = state.last_error or "", state.attempts
    finally:
        server.close()
    assert "folder 'Plant/Press09': no 'Press09' under Objects/Plant (there: Press01, Press02)" in error, error
    assert attempts == 1


@pytest.mark.integration
def test_emit_config_with_several_cells_never_guesses_a_cell() -> None:
    layout = {"cnc-01": {"Power": 1.0}, "cnc-02": {"Power": 2.0}, "Ambient": 21.5}
    server = _server(free_port(), layout)
    try:
        cells = ["machining/line-1/cnc-01", "machining/line-1/cnc-02"]
        args = ["opcua", "browse", server.endpoint, "--emit-config", *(a for c in cells for a in ("--cell", c))]
        emitted = CliRunner().invoke(cli, args)
    finally:
        server.close()
    assert emitted.exit_code == 0, emitted.output
    filled = emitted.stdout.replace("REPLACE: registered legal name", "Acme Precision").replace("REPLACE", "长安镇")
    cfg = load_config_text(filled)
    bound = {(b.cell, b.description.split(" ")[0]) for b in cfg.bindings()}
    assert bound == {
        ("machining/line-1/cnc-01", "Objects/Plant/cnc-01/Power"),
        ("machining/line-1/cnc-02", "Objects/Plant/cnc-02/Power"),
    }
    assert "# 1 readable variables match no --cell" in emitted.stdout and "#   Objects/Plant/Ambient" in emitted.stdout
