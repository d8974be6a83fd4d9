"""``datafactory config validate|schema`` (``diff``/``deploy`` are added by the gateway's deployment module)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from datafactory.config.loader import load_config
from datafactory.config.schema import plant_config_schema
from datafactory.errors import ConfigError


@click.group()
def config() -> None:
    """Plant and edge configs."""


@config.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Validate config FILES; print every error with its key path and exit 1 if any is invalid."""
    failed = 0
    for f in files:
        try:
            cfg = load_config(f)
        except ConfigError as err:
            failed += 1
            click.echo(f"{f}: INVALID ({len(err.problems)} error(s))", err=True)
            for path, msg in err.problems:
                click.echo(f"  {path}: {msg}", err=True)
            continue
        n = len(cfg.bindings())
        click.echo(f"{f}: ok ({len(cfg.sources)} sources, {len(cfg.cell_paths())} cells, {n} signals)")
    if failed:
        sys.exit(1)


@config.command()
def schema() -> None:
    """Print the plant config JSON Schema (for editors: yaml-language-server / VS Code)."""
    click.echo(json.dumps(plant_config_schema(), indent=2, ensure_ascii=False))
