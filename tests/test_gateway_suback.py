"""A subscription the broker refuses (a SUBACK failure) is a failed source, said in one line, not a silent
success and not a 5 s retry loop; a source on an allowed topic of the same broker keeps flowing.

Mosquitto's ``acl_file`` grants every subscription and filters deliveries instead (docs/security.md), so the
refusing broker here is Mosquitto with its dynamic-security plugin, which checks subscriptions at SUBSCRIBE:
anonymous clients may subscribe to ``devices/open/#`` and the gateway's own tree, nothing else."""

from __future__ import annotations

import glob
import json
import logging
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.harness.broker import MosquittoBroker
from tests.support.gateway_env import GatewayThread, collect, free_port, plant

pytestmark = pytest.mark.integration
CELL = "utilities/main/meter-01"


def _meter(sid: str, broker_url: str, topic: str, signal: str) -> dict:
    return {
        "kind": "mqtt_json",
        "id": sid,
        "broker_url": broker_url,
        "mappings": [
            {"topic": topic, "value_path": "kw", "cell": CELL, "signal": signal, "meaning": "power_kw", "unit": "kW"}
        ],
    }


def _dynsec(path, enterprise: str) -> None:
    allowed = [f"df/v1/{enterprise}/#", "devices/open/#"]
    path.write_text(
        json.dumps({
            "defaultACLAccess": {
                "publishClientSend": True, "publishClientReceive": True, "subscribe": False, "unsubscribe": True
            },
            "clients": [],
            "groups": [{"groupname": "anonymous", "roles": [{"rolename": "plant"}]}],
            "roles": [{"rolename": "plant", "acls": [
                {"acltype": "subscribePattern", "topic": t, "priority": 0, "allow": True} for t in allowed
            ]}],
            "anonymousGroup": "anonymous",
        })
    )  # fmt: skip


def test_a_refused_subscription_fails_the_source_with_the_reason(tmp_path, enterprise, caplog) -> None:
    plugin = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so") + glob.glob("/usr/lib/mosquitto*/*.so"))
    if not plugin:
        pytest.skip("Mosquitto's dynamic-security plugin is not installed (Debian package mosquitto ships it)")
    _dynsec(tmp_path / "dynsec.json", enterprise)
    extra = f"plugin {plugin[0]}\nplugin_opt_config_file {tmp_path / 'dynsec.json'}\n"
    broker = MosquittoBroker(port=free_port(), data_dir=tmp_path / "broker", extra_config=extra)
    broker.start()
    try:
        sources = [
            _meter("open", broker.url, "devices/open/meter", "power"),
            _meter("secret", broker.url, "devices/secret/meter", "power_secret"),
        ]
        cfg = plant(enterprise, sources=sources, cells=[CELL])
        publisher = paho.Client(CallbackAPIVersion.VERSION2)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        caplog.set_level(logging.INFO, logger="gateway")
        with (
            collect(broker.url, f"df/v1/{enterprise}/+/+/+/+/data") as col,
            GatewayThread(cfg, mqtt_url=broker.url, state_dir=tmp_path) as gt,
        ):
            deadline = time.monotonic() + 20
            while gt.gateway.source_states().get("secret") != "failed" or not col.data_samples():
                assert time.monotonic() < deadline, gt.gateway.source_states()
                publisher.publish("devices/open/meter", b'{"kw": 12.5}', qos=1).wait_for_publish(5)
                time.sleep(0.5)
            time.sleep(3.0)  # a 5 s loop would have tried again by now
            secret = gt.gateway._sources["secret"].state
            states = gt.gateway.source_states()
        publisher.loop_stop()
        publisher.disconnect()
    finally:
        broker.kill()

    assert states["open"] == "connected"
    assert {s.signal for _, s in col.data_samples()} == {"power"}
    assert states["secret"] == "failed" and secret.attempts == 1, secret
    assert "the broker refused the subscription to 'devices/secret/meter'" in (secret.last_error or ""), secret
    lines = [r for r in caplog.records if "source secret failed" in r.getMessage()]
    assert len(lines) == 1 and not lines[0].exc_info, [r.getMessage() for r in lines]
