"""docs/config-reference.md, generated from the config models: one table per model, every field of every model.

Each table row gives the key, its type in words, its default as it would be written in YAML, the allowed
values (enums, literals) and constraints (bounds, patterns, checks), and the description. Tables are built so
that they cannot break: a ``|`` in any cell is escaped and newlines become spaces. Every source kind of the
``Source`` union gets its own section with its nested models (bindings, security, auth, poll groups…).
"""

from __future__ import annotations

import json
import types
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from datafactory.config.models import SOURCE_MODELS, PlantConfig

_MAX_DEFAULT = 60

# Checks a field's validator performs, in words (the validators themselves are functions, not schema).
_CHECKS = {
    "validate_name": "a name: `^[a-z0-9][a-z0-9_-]{0,63}$`",
    "check_node_id": "an OPC-UA node id (`ns=<index>;s=`, `;i=`, `;g=`, `;b=`), parsed",
    "check_broker_url": "empty or `mqtt://host:port` / `mqtts://host:port`, no credentials in it",
    "validate_credit_code": "18 characters, GB 32100-2015 check character verified",
    "_validate_timezone": "an IANA time zone",
    "_validate_industry_code": "section letter plus 2-4 digits (GB/T 4754-2017)",
    "_valid_address": "an S7 address, parsed",
}


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no row breaks, no column breaks."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else text


def _strip(ann: Any) -> Any:
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    return ann


def _is_union(ann: Any) -> bool:
    return get_origin(ann) in (Union, types.UnionType)


def type_words(ann: Any) -> str:
    """The type of a field in words (``number or null``, ``list of object``), never with a ``|``."""
    ann = _strip(ann)
    if ann is type(None):
        return "null"
    if _is_union(ann):
        return " or ".join(dict.fromkeys(type_words(a) for a in get_args(ann)))
    origin = get_origin(ann)
    if origin is list:
        (item,) = get_args(ann) or (Any,)
        return f"list of {type_words(item)}"
    if origin is dict:
        key, value = get_args(ann) or (str, Any)
        return f"map of {type_words(key)} to {type_words(value)}"
    if origin is Literal:
        return " or ".join(dict.fromkeys(type_words(type(v)) for v in get_args(ann)))
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "object"
    if isinstance(ann, type) and issubclass(ann, Enum):
        return "string"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(ann, getattr(ann, "__name__", "any"))


def _allowed_values(ann: Any) -> list[Any]:
    ann = _strip(ann)
    if _is_union(ann) or get_origin(ann) in (list, dict):
        return [v for a in get_args(ann) for v in _allowed_values(a)]
    if get_origin(ann) is Literal:
        return list(get_args(ann))
    if isinstance(ann, type) and issubclass(ann, Enum):
        return [m.value for m in ann]
    return []


def _constraints(field: FieldInfo, prop: dict[str, Any]) -> list[str]:
    out = []
    for meta in field.metadata:
        if isinstance(meta, AfterValidator):
            name = getattr(meta.func, "__name__", "")
            out.append(_CHECKS.get(name, f"checked by `{name}`"))
    for schema in [prop, *prop.get("anyOf", []), prop.get("items") or {}, prop.get("additionalProperties") or {}]:
        if not isinstance(schema, dict):
            continue
        for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
            if key in schema:
                out.append(f"{word} {schema[key]}")
        if "minLength" in schema:
            out.append("not empty" if schema["minLength"] == 1 else f"at least {schema['minLength']} characters")
        if "maxLength" in schema:
            out.append(f"at most {schema['maxLength']} characters")
        if "pattern" in schema:
            out.append(f"pattern `{schema['pattern']}`")
    return list(dict.fromkeys(out))


def default_words(field: FieldInfo) -> str:
    """The default as written in YAML (``drop_oldest``, ``[]``, ``null``), or *required*."""
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is PydanticUndefined:
        return "**required**"
    plain = to_jsonable_python(value)
    if isinstance(plain, list) and plain and len(json.dumps(plain, ensure_ascii=False)) > _MAX_DEFAULT:
        return f"{len(plain)} built-in entries (listed as the default in the JSON Schema)"
    if isinstance(plain, dict) and len(json.dumps(plain, ensure_ascii=False)) > _MAX_DEFAULT:
        return "the defaults of its keys (below)"
    if isinstance(plain, str):
        return _code(plain) if plain else '`""` (empty)'
    return _code(json.dumps(plain, ensure_ascii=False))


def nested_models(ann: Any) -> list[type[BaseModel]]:
    """Models a field holds, directly or in a list, map or union."""
    ann = _strip(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [m for a in get_args(ann) for m in nested_models(a)]


def _kind(model: type[BaseModel]) -> str:
    """The ``kind`` tag of a member of a tagged union, else ""."""
    kind = model.model_fields.get("kind")
    if kind is not None and get_origin(kind.annotation) is Literal and len(get_args(kind.annotation)) == 1:
        return str(get_args(kind.annotation)[0])
    return ""


def _tag(model: type[BaseModel]) -> str:
    return f" (kind: {_kind(model)})" if _kind(model) else ""


def sections() -> list[tuple[str, type[BaseModel]]]:
    """(key path, model) of every model reachable from ``PlantConfig``, each once, in reading order."""
    seen: set[type[BaseModel]] = set()
    out: list[tuple[str, type[BaseModel]]] = []

    def visit(path: str, model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        out.append((path, model))
        # Inside one kind of a tagged list the paths name the kind: sources[kind=modbus].poll_groups[].
        base = f"{path[:-2]}[kind={_kind(model)}]" if _kind(model) and path.endswith("[]") else path
        for name, field in model.model_fields.items():
            suffix = "[]" if get_origin(_strip(field.annotation)) is list else ""
            suffix = "{}" if get_origin(_strip(field.annotation)) is dict else suffix
            child = f"{base}.{name}{suffix}" if base else f"{name}{suffix}"
            for sub in nested_models(field.annotation):
                visit(child, sub)

    visit("", PlantConfig)
    return out


def heading(path: str, model: type[BaseModel]) -> str:
    return f"`{path or '(top level)'}`{_tag(model)}"


def anchor(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return "".join(c for c in text.lower() if c.isalnum() or c in " -_").replace(" ", "-")


def _prose(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")  # '<index>' is not an HTML tag to swallow


def _type_cell(field: FieldInfo, where: dict[type[BaseModel], str]) -> str:
    words = type_words(field.annotation)
    links = [f"[{m.__name__}](#{anchor(where[m])})" for m in nested_models(field.annotation) if m in where]
    return f"{words}: {', '.join(links)}" if links else words


def model_table(model: type[BaseModel], where: dict[type[BaseModel], str] | None = None) -> list[str]:
    where = where or {}
    props = model.model_json_schema().get("properties", {})
    rows = ["| key | type | default | allowed values and constraints | description |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        allowed = _allowed_values(field.annotation)
        limits = ([("one of " + ", ".join(_code(str(v)) for v in allowed))] if allowed else []) + _constraints(
            field, props.get(name, {})
        )
        rows.append(
            "| "
            + " | ".join(
                cell(c)
                for c in (
                    f"`{name}`",
                    _type_cell(field, where),
                    default_words(field),
                    "; ".join(limits),
                    _prose(field.description or ""),
                )
            )
            + " |"
        )
    return rows


def render_reference() -> str:
    found = sections()
    where = {model: heading(path, model) for path, model in found}
    out = [
        "# Plant config reference",
        "",
        "Generated from the models in `datafactory/config/` by `python -m datafactory.config.schema`; do not edit.",
        "JSON Schema: `edge_configs/schema/plant-config.schema.json` (point your editor's YAML language server at",
        "it, or run `check-jsonschema --schemafile` on it). `datafactory config init` writes a commented starter",
        "config, `datafactory config validate` checks one. Unknown keys are errors. Secrets are never values: only",
        "`*_env` names of environment variables that hold them.",
        "",
        "Each section is one object of the config; its heading is the key path where it appears (`[]`: each item",
        "of a list, `{}`: each value of a map). Source kinds: "
        + ", ".join(f"[`{m.kind_name()}`](#{anchor(where[m])})" for m in SOURCE_MODELS)
        + ".",
    ]
    for _path, model in found:
        out += ["", f"## {where[model]}", ""]
        doc = (model.__doc__ or "").strip().split("\n\n")[0]
        if doc and not doc.startswith(("A base class", "Usage docs")) and model.__module__.startswith("datafactory"):
            out += [" ".join(doc.split()), ""]
        if model in SOURCE_MODELS:
            kind = model.kind_name()
            out += [
                f"Signal bindings: `{model.bindings_key}[]` (below). Adapter `gateway/sources/{kind}.py`, "
                f"README `gateway/sources/{kind}.md`, sample config `edge_configs/examples/{kind}.yaml`.",
                "",
            ]
        out += [f"Model `{model.__name__}`.", "", *model_table(model, where)]
    return "\n".join(out) + "\n"
