"""Generated broker ACLs for a Sparkplug B source: the gateway may read its group and send rebirth requests only;
a group id cannot smuggle MQTT wildcards into the ACL."""

from __future__ import annotations

import pytest
import yaml

from datafactory.config import load_config_text
from datafactory.errors import ConfigError
from ops.broker_config import render_acl, users_for
from tests.test_config import GOOD


def _with_sparkplug(group_id: str) -> str:
    doc = yaml.safe_load(GOOD)
    doc["sources"].append(
        {
            "kind": "sparkplug",
            "id": "spb",
            "group_id": group_id,
            "metrics": [
                {
                    "edge_node": "node1",
                    "metric": "Press/Power",
                    "cell": "stamping/line1/press-01",
                    "signal": "spb_power",
                    "meaning": "power_kw",
                }
            ],
        }
    )
    return yaml.safe_dump(doc, allow_unicode=True)


def test_gateway_reads_its_group_and_writes_only_rebirth_requests() -> None:
    cfg = load_config_text(_with_sparkplug("plant-a"))
    acl = render_acl(users_for([cfg]))
    gateway_block = acl.split("user acme.dg-1.gw-1\n", 1)[1].split("\nuser ", 1)[0]
    assert "topic read spBv1.0/plant-a/#" in gateway_block
    assert "topic write spBv1.0/plant-a/NCMD/#" in gateway_block
    assert "topic write spBv1.0/plant-a/#" not in gateway_block
    node_block = acl.split("user acme.dg-1.spb\n", 1)[1].split("\nuser ", 1)[0]
    assert "topic write spBv1.0/plant-a/#" in node_block
    assert "topic read spBv1.0/plant-a/NCMD/#" in node_block


@pytest.mark.parametrize("group_id", ["#", "a/b", "plant+"])
def test_group_id_cannot_carry_wildcards(group_id: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config_text(_with_sparkplug(group_id))
    assert "sources[1].group_id" in dict(exc.value.problems)
