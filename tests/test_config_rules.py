"""Config validation catches what would otherwise fail at run time or leak a secret, naming the key."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from datafactory.config.loader import validate_document
from datafactory.errors import ConfigError
from tests.test_config import GOOD


def _doc() -> dict[str, Any]:
    return yaml.safe_load(GOOD)


def _opcua(doc: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in doc["sources"] if s["kind"] == "opcua")


def _problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as err:
        validate_document(doc, "plant.yaml")
    return err.value.problems


@pytest.mark.parametrize("node_id", ["ns=2,s=X", "ns=2;i=abc", "IMM01.Good", "ns=70000;s=X", "ns=2;i=4294967296",
                                     "ns=2;g=not-a-guid", "s="])
def test_malformed_node_ids_are_refused_with_their_key(node_id: str) -> None:
    doc = _doc()
    _opcua(doc)["nodes"][0]["node_id"] = node_id
    problems = _problems(doc)
    assert [path for path, _ in problems] == ["sources[0].nodes[0].node_id"], problems


@pytest.mark.parametrize("node_id", ["ns=2;s=Line1.Press01.Power", "i=2258", "ns=0;i=2258",
                                     "ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a", "ns=1;b=M/RbKBsRVkePCePcx24oRA==",
                                     "nsu=urn:acme:plc;s=A;B", "ns=2;s=含中文"])
def test_valid_node_ids_pass(node_id: str) -> None:
    doc = _doc()
    _opcua(doc)["nodes"][0]["node_id"] = node_id
    validate_document(doc, "plant.yaml")


def _mqtt_source(broker_url: str) -> dict[str, Any]:
    return {"kind": "mqtt_json", "id": "meter", "broker_url": broker_url, "mappings": []}


@pytest.mark.parametrize(("url", "words"), [
    ("mqtt://meter:hunter2@127.0.0.1:1883", "credentials do not belong in the URL"),
    ("127.0.0.1:1883", "not a broker URL"),
    ("http://127.0.0.1:1883", "not a broker URL"),
    ("mqtt://127.0.0.1:port", "bad port"),
])
def test_broker_urls_need_a_scheme_and_no_credentials(url: str, words: str) -> None:
    doc = _doc()
    doc["sources"].append(_mqtt_source(url))
    problems = _problems(doc)
    paths = {p for p, m in problems if words in m}
    assert paths == {f"sources[{len(doc['sources']) - 1}].broker_url"}, problems
    assert all("hunter2" not in m for _, m in problems)  # the message never repeats the secret


def test_a_plain_text_password_names_the_key_and_the_env_field() -> None:
    doc = _doc()
    _opcua(doc)["auth"] = {"kind": "username", "username_env": "PLC_USER", "password": "hunter2"}
    problems = dict(_problems(doc))
    assert "sources[0].auth.password" in problems
    assert "password_env" in problems["sources[0].auth.password"]


def test_unreplaced_placeholders_are_refused_with_their_path() -> None:
    doc = _doc()
    doc["enterprise"]["name"] = "REPLACE: registered legal name"
    problems = _problems(doc)
    assert ("enterprise.name", "placeholder not replaced: 'REPLACE: registered legal name' — fill in the real value") \
        in problems


def test_the_good_config_still_passes() -> None:
    validate_document(copy.deepcopy(_doc()), "plant.yaml")


def test_scaling_must_fit_the_declared_type() -> None:
    """Modbus/S7 values are typed by their data type; a scale that would turn them into something the declared
    type refuses (raw × 0.1 declared int64, a scaled flag or text) is a config error naming the binding."""
    from tests.support.gateway_env import plant_doc

    def modbus(**reg: Any) -> dict[str, Any]:
        base = {"table": "holding_register", "address": 0, "cell": "a/b/c", "signal": "x", "meaning": "generic"}
        return {"kind": "modbus", "id": "mb", "registers": [base | reg]}

    bad = [
        ({"data_type": "int32", "scale": 0.1, "signal_type": "int64"}, "declare float64"),
        ({"data_type": "string", "length": 2, "offset": 1}, "cannot have scale/offset"),
        ({"data_type": "bool", "bit": 3, "scale": 2}, "cannot have scale/offset"),
    ]
    for reg, why in bad:
        problems = _problems(plant_doc("acme", sources=[modbus(**reg)], cells=["a/b/c"]))
        assert problems == [("sources[0].registers[0].signal_type", problems[0][1])] and why in problems[0][1]
    ok = validate_document(plant_doc("acme", sources=[modbus(data_type="int32", scale=0.1)], cells=["a/b/c"]))
    assert ok.sources[0].signal_bindings()[0].declared_type() == "float64"  # a scaled integer is a float64
    ok = validate_document(plant_doc("acme", sources=[modbus(data_type="uint64", scale=10)], cells=["a/b/c"]))
    assert ok.sources[0].signal_bindings()[0].declared_type() == "uint64"
