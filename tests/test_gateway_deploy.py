"""Config deployment: `config diff`, `config deploy` applied live by a running gateway, invalid configs rejected
with the reason on the status topic while the old config stays; `gateways` lists the gateway."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import orjson
import pytest
import yaml
from click.testing import CliRunner

from app.cli.main import cli
from datafactory.contract.payload import encode_config
from gateway.mqtt_session import MqttSession
from tests.support.gateway_env import GatewayThread, OpcUaTestServer, collect, free_port, plant, plant_doc

pytestmark = pytest.mark.integration
CELL = "press/line-1/press-01"


def _doc(enterprise: str, endpoint: str, scale: float) -> dict:
    node = {"node_id": "ns=2;s=Power", "cell": CELL, "signal": "power", "meaning": "power_kw", "scale": scale}
    source = {
        "kind": "opcua",
        "id": "plc",
        "endpoint": endpoint,
        "security": {"policy": "none", "mode": "none"},
        "publishing_interval_ms": 100,
        "nodes": [node],
    }
    return plant_doc(enterprise, sources=[source], cells=[CELL])


def _publish_raw(mqtt_url: str, topic: str, payload: bytes) -> None:
    async def go() -> None:
        session = MqttSession(mqtt_url, client_id=f"df-test-raw-{uuid.uuid4().hex[:8]}")
        await session.connect()
        session.publish(topic, payload, retain=True)
        await asyncio.sleep(0.3)
        await session.close()

    asyncio.run(go())


def test_diff_deploy_apply_and_reject(tmp_path, mqtt_url, enterprise) -> None:
    server = OpcUaTestServer(free_port(), {"Power": 0.0}).start()
    runner = CliRunner()
    env = {"DATAFACTORY_MQTT_URL": mqtt_url}
    config_topic = f"df/v1/{enterprise}/site-1/_gw/gw-1/config"
    v1_file, v2_file = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    v1_file.write_text(yaml.safe_dump(_doc(enterprise, server.endpoint, 1.0), allow_unicode=True))
    v2_file.write_text(yaml.safe_dump(_doc(enterprise, server.endpoint, 0.001), allow_unicode=True))
    v1 = plant(enterprise, sources=_doc(enterprise, server.endpoint, 1.0)["sources"], cells=[CELL])
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/#") as col,
            GatewayThread(v1, mqtt_url=mqtt_url, state_dir=tmp_path) as gw,
        ):
            assert col.wait_for(lambda: gw.gateway.source_states().get("plc") == "connected")
            server.write("Power", 5000.0)
            assert col.wait_for(lambda: 5000.0 in [s.value for _, s in col.data_samples()])

            nothing = runner.invoke(cli, ["config", "diff", str(v2_file)], env=env)
            assert nothing.exit_code == 1 and "nothing deployed" in nothing.output

            deployed = runner.invoke(cli, ["config", "deploy", str(v2_file), "--wait", "15"], env=env)
            assert deployed.exit_code == 0, deployed.output
            v2_version = plant(enterprise, sources=_doc(enterprise, server.endpoint, 0.001)["sources"], cells=[CELL])
            assert f"gateway applied {v2_version.config_version()}" in deployed.output
            server.write("Power", 7000.0)  # the re-opened source now scales by 0.001
            assert col.wait_for(lambda: 7.0 in [s.value for _, s in col.data_samples()])

            same = runner.invoke(cli, ["config", "diff", str(v2_file)], env=env)
            assert same.exit_code == 0 and "same as deployed" in same.output
            changed = runner.invoke(cli, ["config", "diff", str(v1_file)], env=env)
            assert changed.exit_code == 1
            assert "-    scale: 0.001" in changed.output and "+    scale: 1.0" in changed.output

            bad = _doc(enterprise, server.endpoint, 1.0)
            bad["sources"][0]["nodes"][0]["cell"] = "press/line-1/press-99"
            _publish_raw(mqtt_url, config_topic, encode_config(bad, version="bad1"))

            def rejected() -> bool:
                status = orjson.loads(col.last("_gw/gw-1/status") or b"{}")
                return bool(status.get("config_error")) and "press-99" in status["config_error"]

            assert col.wait_for(rejected)
            status = orjson.loads(col.last("_gw/gw-1/status") or b"{}")
            assert status["config_version"] == v2_version.config_version()  # the old config stays in force
            assert "sources[0].nodes[0].cell" in status["config_error"]

            listed = runner.invoke(cli, ["gateways", "--enterprise", enterprise, "--json", "--wait", "1"], env=env)
            assert listed.exit_code == 0, listed.output
            rows = json.loads(listed.output)
            assert [r["path"] for r in rows] == [f"{enterprise}/site-1/gw-1"]
            assert rows[0]["online"] is True and rows[0]["config_version"] == v2_version.config_version()
    finally:
        _publish_raw(mqtt_url, config_topic, b"")  # clear the retained config on the shared broker
        server.close()


def test_deploy_says_what_the_gateway_confirmed(tmp_path, mqtt_url, enterprise) -> None:
    """A typo'd gateway is refused before anything is published; an unreachable endpoint is not "applied";
    a gateway that never answers is "published, not confirmed" — each with its own exit code."""
    server = OpcUaTestServer(free_port(), {"Power": 0.0}).start()
    runner = CliRunner()
    env = {"DATAFACTORY_MQTT_URL": mqtt_url}
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_doc(enterprise, server.endpoint, 2.0), allow_unicode=True))
    unreachable = tmp_path / "unreachable.yaml"
    closed = f"opc.tcp://127.0.0.1:{free_port()}/"  # loopback, nothing listens there
    unreachable.write_text(yaml.safe_dump(_doc(enterprise, closed, 1.0), allow_unicode=True))
    v1 = plant(enterprise, sources=_doc(enterprise, server.endpoint, 1.0)["sources"], cells=[CELL])
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/#") as col,
            GatewayThread(v1, mqtt_url=mqtt_url, state_dir=tmp_path) as gw,
        ):
            assert col.wait_for(lambda: gw.gateway.source_states().get("plc") == "connected")
            typo = runner.invoke(cli, ["config", "deploy", str(good), "--gateway", "gw-9"], env=env)
            assert typo.exit_code == 2, typo.output
            assert "gw-9" in typo.output and "never reported" in typo.output and "gw-1" in typo.output
            time.sleep(0.5)
            assert col.last("_gw/gw-9/config") is None  # nothing retained where no gateway reads

            applied = runner.invoke(cli, ["config", "deploy", str(good), "--wait", "30"], env=env)
            assert applied.exit_code == 0, applied.output
            assert "sources connected: plc" in applied.output

            doc = _doc(enterprise, server.endpoint, 3.0)
            doc["sources"][0]["nodes"].append(
                {"node_id": "ns=2;s=NoSuchNode", "cell": CELL, "signal": "ghost", "meaning": "generic"}
            )
            missing_node = tmp_path / "missing-node.yaml"
            missing_node.write_text(yaml.safe_dump(doc, allow_unicode=True))
            refused = runner.invoke(cli, ["config", "deploy", str(missing_node), "--wait", "30"], env=env)
            assert refused.exit_code == 1, refused.output
            assert "plc connected, 1 item(s) refused" in refused.output
            table = runner.invoke(cli, ["gateways", "--enterprise", enterprise, "--wait", "1"], env=env)
            assert table.exit_code == 0, table.output
            header, row = table.output.splitlines()[:2]
            assert header.split()[5] == "refused" and row.split()[5] == "1", table.output
            assert "plc=connected (1 items refused)" in row

            broken = runner.invoke(cli, ["config", "deploy", str(unreachable), "--wait", "30"], env=env)
            assert broken.exit_code == 1, broken.output
            assert "applied" not in broken.output
            assert "not every source works: plc" in broken.output
            assert gw.gateway.source_states().get("plc") != "connected"

            silent = runner.invoke(
                cli, ["config", "deploy", str(good), "--gateway", "gw-9", "--new-gateway", "--wait", "2"], env=env
            )
            assert silent.exit_code == 3, silent.output
            assert "not confirmed by gateway gw-9 within 2 s" in silent.output
    finally:
        for gateway in ("gw-1", "gw-9"):
            _publish_raw(mqtt_url, f"df/v1/{enterprise}/site-1/_gw/{gateway}/config", b"")
        server.close()
