"""docs/config-reference.md documents every field of every config model, every source kind, enum values and
defaults as YAML, in tables that a `|` or a newline in a description cannot break."""

from __future__ import annotations

import re

from pydantic import BaseModel

from datafactory.config.models import SOURCE_MODELS, OpcUaSource
from datafactory.config.reference import cell, default_words, heading, model_table, sections
from datafactory.config.schema import DOCS_PATH, render_docs

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    """Every model reachable from ``model`` — found here by walking pydantic's own schema, not the generator."""
    from datafactory.config.reference import nested_models

    if model in seen:
        return seen
    seen.add(model)
    for field in model.model_fields.values():
        for sub in nested_models(field.annotation):
            _models(sub, seen)
    return seen


def test_every_field_of_every_model_has_a_row_in_its_section() -> None:
    from datafactory.config.models import PlantConfig

    text = render_docs()
    found = dict((model, path) for path, model in sections())
    reachable = _models(PlantConfig, set())
    assert set(found) == reachable
    assert len(reachable) > 40  # the plant, its hierarchy, five source kinds and theirs, analytics, alerting
    for model, path in found.items():
        body = _section(text, heading(path, model))
        for name, field in model.model_fields.items():
            row = next((line for line in body.splitlines() if line.startswith(f"| `{name}` |")), None)
            assert row is not None, f"{model.__name__}.{name} is not in section {path!r}"
            if field.description:
                assert cell(field.description).replace("<", "&lt;").replace(">", "&gt;") in row


def test_every_source_kind_has_its_section_and_bindings() -> None:
    text = DOCS_PATH.read_text(encoding="utf-8")
    for model in SOURCE_MODELS:
        kind = model.kind_name()
        body = _section(text, f"`sources[]` (kind: {kind})")
        assert f"`{model.bindings_key}[]`" in body
        assert f"\n## `sources[kind={kind}].{model.bindings_key}[]`\n" in text
    opcua = _section(text, "`sources[]` (kind: opcua)")
    for key in ("endpoint", "security", "auth", "nodes"):
        assert f"| `{key}` |" in opcua


def test_enum_values_and_defaults_read_as_yaml() -> None:
    text = DOCS_PATH.read_text(encoding="utf-8")
    assert "<OverflowPolicy" not in text and "OverflowPolicy." not in text
    gateway = _section(text, "`gateway`")
    row = next(line for line in gateway.splitlines() if line.startswith("| `buffer_overflow` |"))
    assert "`drop_oldest`" in row and "one of `drop_oldest`, `drop_newest`" in row
    sec = _section(text, "`sources[kind=opcua].security`")
    assert "`basic256sha256`" in sec and "`sign_and_encrypt`" in sec
    assert default_words(OpcUaSource.model_fields["timestamps"]) == "`source`"
    assert default_words(OpcUaSource.model_fields["endpoint"]) == "**required**"


def test_tables_never_break() -> None:
    text = DOCS_PATH.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) > 300
    for line in rows:
        assert len(_UNESCAPED_PIPE.findall(line)) == 6, line  # five columns, whatever the cells hold
    assert "float | None" not in text and "number or null" in text


def test_a_pipe_or_newline_in_a_description_stays_in_its_cell() -> None:
    from pydantic import Field

    class Tricky(BaseModel):
        x: int | None = Field(default=None, description="a | b\nsecond line")

    (_, _, row) = model_table(Tricky)
    assert len(_UNESCAPED_PIPE.findall(row)) == 6
    assert "a \\| b second line" in row
