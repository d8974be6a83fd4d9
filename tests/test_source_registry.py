"""The source registry: every kind in the ``Source`` union has its adapter module, README and a sample config
that validates; the loader, bindings and reference are derived from the union (no per-kind chains)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from datafactory.config import load_config
from datafactory.config.loader import _UNION_TAGS
from datafactory.config.models import SOURCE_KINDS, SOURCE_MODELS
from datafactory.config.schema import render_docs

ROOT = Path(__file__).resolve().parents[1]
KINDS = sorted(SOURCE_KINDS)


def test_registry_lists_every_source_model() -> None:
    assert {"opcua", "mqtt_json", "sparkplug"} <= set(KINDS)
    assert len(SOURCE_MODELS) == len(KINDS)  # no two models share a kind
    assert set(KINDS) <= _UNION_TAGS


@pytest.mark.parametrize("kind", KINDS)
def test_kind_has_adapter_readme_and_valid_sample(kind: str) -> None:
    module = importlib.import_module(f"gateway.sources.{kind}")
    assert callable(module.create)
    assert set(inspect.signature(module.create).parameters) == {"config", "mqtt_url", "state_dir"}
    readme = (ROOT / "gateway" / "sources" / f"{kind}.md").read_text(encoding="utf-8")
    assert readme.startswith(f"# `kind: {kind}`")
    assert f"edge_configs/examples/{kind}.yaml" in readme
    cfg = load_config(ROOT / "edge_configs" / "examples" / f"{kind}.yaml")
    sources = [s for s in cfg.sources if s.kind == kind]
    assert sources, f"the sample config has no {kind} source"
    bindings = sources[0].signal_bindings()
    assert bindings and bindings == list(getattr(sources[0], SOURCE_KINDS[kind].bindings_key))
    assert f"## `sources[]` (kind: {kind})" in render_docs()


def test_plant_bindings_are_every_sources_bindings_in_order() -> None:
    cfgs = [load_config(ROOT / "edge_configs" / "examples" / f"{k}.yaml") for k in KINDS]
    for cfg in cfgs:
        assert cfg.bindings() == [b for s in cfg.sources for b in s.signal_bindings()]


def test_no_isinstance_chain_over_source_kinds_in_config_code() -> None:
    for name in ("models.py", "loader.py"):
        text = (ROOT / "datafactory" / "config" / name).read_text(encoding="utf-8")
        for model in SOURCE_MODELS:
            assert f"isinstance(src, {model.__name__})" not in text, f"{name} branches on {model.__name__}"
