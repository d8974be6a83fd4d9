"""JSON Schema and the docs table generated from the config models (committed; a test checks freshness)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datafactory.config.models import PlantConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "edge_configs" / "schema" / "plant-config.schema.json"
DOCS_PATH = REPO_ROOT / "docs" / "config-reference.md"


def _tagged_branches(node: Any) -> Any:
    """Rewrite pydantic's ``oneOf`` + ``discriminator`` into ``if``/``then`` on the tag.

    ``discriminator`` is an OpenAPI keyword that generic JSON Schema validators (check-jsonschema, the YAML
    language server in editors) ignore: they try every ``oneOf`` branch and report the failures of all of them,
    so a typo inside a modbus source reads "'opcua' was expected" or "Additional properties are not allowed
    ('host', 'port', …)". With ``if kind == X then <X's model>`` exactly one branch applies, and its error is
    the one reported; an unknown tag fails the ``enum`` on the tag and lists the kinds there are.
    """
    if isinstance(node, list):
        return [_tagged_branches(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _tagged_branches(v) for k, v in node.items()}
    disc = node.get("discriminator")
    if not (isinstance(disc, dict) and "oneOf" in node and isinstance(disc.get("mapping"), dict)):
        return node
    tag, mapping = disc["propertyName"], disc["mapping"]
    out = {k: v for k, v in node.items() if k not in ("discriminator", "oneOf")}
    out["type"] = "object"
    out["required"] = [tag]
    kinds = sorted(mapping)
    out["properties"] = {tag: {"enum": kinds, "description": f"Which kind this is: {', '.join(kinds)}."}}
    out["allOf"] = [
        {"if": {"properties": {tag: {"const": value}}, "required": [tag]}, "then": {"$ref": ref}}
        for value, ref in sorted(mapping.items())
    ]
    return out


def plant_config_schema() -> dict[str, Any]:
    schema = _tagged_branches(PlantConfig.model_json_schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://datafactory.example/schema/plant-config-v1.json"
    return schema


def render_schema() -> str:
    return json.dumps(plant_config_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def render_docs() -> str:
    from datafactory.config.reference import render_reference

    return render_reference()


def write_all() -> None:
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(render_schema(), encoding="utf-8")
    DOCS_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOCS_PATH.write_text(render_docs(), encoding="utf-8")


if __name__ == "__main__":
    write_all()
