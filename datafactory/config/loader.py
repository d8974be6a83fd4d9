"""Load and validate plant configs, reporting every problem with its key path (``sources[1].nodes[3].node_id``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from datafactory.config.alerting import ALERT_RULE_KINDS
from datafactory.config.models import SOURCE_KINDS, Auth, PlantConfig, SignalBinding
from datafactory.contract.values import SignalType
from datafactory.errors import ConfigError
from datafactory.settings import redact_url

# pydantic puts the discriminator tag of a tagged union into the error location; a user never wrote it.
_UNION_TAGS = (set(SOURCE_KINDS) | {get_args(m.model_fields["kind"].annotation)[0] for m in get_args(get_args(Auth)[0])}
               | ALERT_RULE_KINDS)


_SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api_key"})
# What `opcua browse --emit-config` and `config init` write where only the integrator knows the answer.
_PLACEHOLDER = "REPLACE"


def placeholder_problems(doc: Any, path: str = "") -> list[tuple[str, str]]:
    """Every value still holding a REPLACE placeholder, by key path."""
    out: list[tuple[str, str]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += placeholder_problems(value, f"{path}.{key}" if path else str(key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += placeholder_problems(value, f"{path}[{i}]")
    elif isinstance(doc, str) and _PLACEHOLDER in doc:
        out.append((path or "(top level)", f"placeholder not replaced: {doc!r} — fill in the real value"))
    return out


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif (part in _UNION_TAGS and i > 0) or part.startswith("function-after[") or part.startswith("function-"):
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _pydantic_problems(err: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for e in err.errors(include_url=False):
        msg = e["msg"]
        if e["type"] == "extra_forbidden" and str(e["loc"][-1]) in _SECRET_KEYS:
            key = str(e["loc"][-1])
            msg = (f"a secret ({key!r}) in plain text is not allowed in a config: name the environment variable "
                   f"that holds it in {key.removesuffix('word').removesuffix('_')}_env" if key != "password" else
                   "a password in plain text is not allowed in a config: name the environment variable that "
                   "holds it in password_env")
        elif e["type"] == "extra_forbidden":
            msg = "unknown key: this is either a typo or this option does not exist"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        if "input" in e and e["type"] not in ("missing", "extra_forbidden") and not isinstance(e["input"], dict):
            shown = redact_url(e["input"]) if isinstance(e["input"], str) and "://" in e["input"] else e["input"]
            msg = f"{msg} (got {shown!r})"
        problems.append((_key_path(e["loc"]), msg))
    return problems


def _scaling_problem(b: SignalBinding) -> str | None:
    """A scaled value must still fit the declared type: raw × 0.1 is no integer, and booleans and strings do not
    scale (the gateway would otherwise publish values the declared type refuses)."""
    declared = b.declared_type()
    if not b.is_scaled() or declared is SignalType.FLOAT64:
        return None
    if declared in (SignalType.BOOL, SignalType.STRING):
        return f"a {declared.value} signal cannot have scale/offset"
    if not b.scales_to_integers():
        return f"{declared.value} with scale {b.scale:g} and offset {b.offset:g}: declare float64, or scale by integers"
    return None


def semantic_problems(cfg: PlantConfig) -> list[tuple[str, str]]:
    """Cross-field rules the JSON Schema cannot express."""
    problems: list[tuple[str, str]] = []
    cells = cfg.cell_paths()
    seen_ids: dict[str, int] = {}
    seen_signals: dict[tuple[str, str], str] = {}
    for i, src in enumerate(cfg.sources):
        if src.id in seen_ids:
            problems.append(
                (f"sources[{i}].id", f"source id {src.id!r} is already used by sources[{seen_ids[src.id]}]")
            )
        seen_ids.setdefault(src.id, i)
        learn = getattr(src, "learn", None)  # Sparkplug: learned signals need a cell of this site
        if learn is not None and learn.cell not in cells:
            known = ", ".join(sorted(cells)) or "none defined"
            problems.append((f"sources[{i}].learn.cell", f"cell {learn.cell!r} is not in areas (known: {known})"))
        for j, folder in enumerate(getattr(src, "folders", [])):  # OPC-UA: variables found under a browse path
            if folder.cell not in cells:
                known = ", ".join(sorted(cells)) or "none defined"
                message = f"cell {folder.cell!r} is not in areas (known: {known})"
                problems.append((f"sources[{i}].folders[{j}].cell", message))
        problems.extend((f"sources[{i}].{key}", msg) for key, msg in src.semantic_problems())
        list_key = src.bindings_key
        for j, b in enumerate(src.signal_bindings()):
            where = f"sources[{i}].{list_key}[{j}]"
            scaling = _scaling_problem(b)
            if scaling:
                problems.append((f"{where}.signal_type", scaling))
            if b.cell not in cells:
                known = ", ".join(sorted(cells)) or "none defined"
                problems.append((f"{where}.cell", f"cell {b.cell!r} is not in areas (known: {known})"))
            key = (b.cell, b.signal)
            if key in seen_signals:
                problems.append(
                    (f"{where}.signal", f"signal {b.cell}/{b.signal} is already bound at {seen_signals[key]}")
                )
            seen_signals.setdefault(key, where)
    for ai, area in enumerate(cfg.areas):
        line_ids = [ln.id for ln in area.lines]
        for li, line in enumerate(area.lines):
            if line_ids.count(line.id) > 1:
                problems.append((f"areas[{ai}].lines[{li}].id", f"line id {line.id!r} is duplicated"))
            cell_ids = [c.id for c in line.cells]
            for ci, cell in enumerate(line.cells):
                if cell_ids.count(cell.id) > 1:
                    problems.append((f"areas[{ai}].lines[{li}].cells[{ci}].id", f"cell id {cell.id!r} is duplicated"))
    return problems


def validate_document(doc: Any, source: str = "<config>") -> PlantConfig:
    """Validate a parsed YAML/JSON document; raise ``ConfigError`` listing every problem with its key path."""
    if not isinstance(doc, dict):
        raise ConfigError(source, [("(top level)", f"expected a mapping, got {type(doc).__name__}")])
    placeholders = placeholder_problems(doc)
    try:
        cfg = PlantConfig.model_validate(doc)
    except ValidationError as err:
        raise ConfigError(source, _pydantic_problems(err) + placeholders) from None
    problems = placeholders + semantic_problems(cfg)
    if problems:
        raise ConfigError(source, problems)
    return cfg


def load_config_text(text: str, source: str = "<config>") -> PlantConfig:
    try:
        # libyaml's C loader where available: a 20,000-node gateway config parses in seconds, not half a minute.
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(top level)"
        raise ConfigError(source, [(where, f"not valid YAML: {getattr(err, 'problem', err)}")]) from None
    return validate_document(doc, source)


def load_config(path: str | Path) -> PlantConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(str(p), [("(file)", f"cannot read: {err.strerror}")]) from None
    return load_config_text(text, str(p))
