"""JSON Schema and the docs table generated from the config models (committed; a test checks freshness)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datafactory.config.models import SOURCE_MODELS, PlantConfig

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


def _rows(model: Any, prefix: str, seen: set[str]) -> list[str]:
    from pydantic import BaseModel

    rows = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        ann = field.annotation
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        if len(default) > 40:
            default = default[:37] + "…"
        type_name = getattr(ann, "__name__", str(ann)).replace("typing.", "")
        rows.append(f"| `{path}` | {type_name} | {default} | {field.description or ''} |")
        args = getattr(ann, "__args__", ()) or (ann,)
        for arg in args:
            inner = getattr(arg, "__args__", (arg,))
            for sub in inner:
                if isinstance(sub, type) and issubclass(sub, BaseModel) and sub.__name__ not in seen:
                    seen_here = seen | {sub.__name__}
                    suffix = "[]." if getattr(ann, "__origin__", None) is list else "."
                    rows.extend(_rows(sub, f"{path}{suffix}", seen_here))
    return rows


def render_docs() -> str:
    header = [
        "# Plant config reference",
        "",
        "Generated from `datafactory/config/models.py` by `python -m datafactory.config.schema`; do not edit.",
        "JSON Schema: `edge_configs/schema/plant-config.schema.json` (point your editor's YAML language server",
        "at it). Unknown keys are errors. Secrets are never values: only `*_env` names of environment variables.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    return "\n".join(header + _rows(PlantConfig, "", {"PlantConfig"}) + _source_kinds()) + "\n"


def _source_kinds() -> list[str]:
    """One section per registered source kind: what it reads, its README and its sample config."""
    out = ["", "## Source kinds", ""]
    for model in SOURCE_MODELS:
        kind = model.kind_name()
        what = model.model_fields["kind"].description or ""
        out += [
            f"### `kind: {kind}`",
            "",
            f"{what} Signal bindings: `sources[].{model.bindings_key}[]`. Adapter `gateway/sources/{kind}.py`,",
            f"README `gateway/sources/{kind}.md`, sample config `edge_configs/examples/{kind}.yaml`.",
            "",
        ]
    return out[:-1]


def write_all() -> None:
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(render_schema(), encoding="utf-8")
    DOCS_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOCS_PATH.write_text(render_docs(), encoding="utf-8")


if __name__ == "__main__":
    write_all()
