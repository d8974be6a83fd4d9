"""``datafactory config validate|schema`` (``diff``/``deploy`` are added by the gateway's deployment module)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from datafactory.config.loader import load_config
from datafactory.config.models import PlantConfig
from datafactory.config.schema import plant_config_schema
from datafactory.config.starter import DEFAULT_SCHEMA_REF, SNIPPETS, starter_config
from datafactory.errors import ConfigError


@click.group()
def config() -> None:
    """Plant and edge configs."""


@config.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Validate config FILES; print every error with its key path and exit 2 if any is invalid."""
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
        sys.exit(2)  # bad input, as for every command given an invalid config (README, "Command line")


@config.command()
@click.argument("kinds", nargs=-1, type=click.Choice(sorted(SNIPPETS)))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write to this file [default: stdout].")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def init(kinds: tuple[str, ...], out: Path | None, force: bool) -> None:
    """Write a commented starter plant config with a source of each KIND (default: opcua) that validates as is."""
    import os

    from datafactory.config.schema import SCHEMA_PATH

    if out is None:
        ref = str(SCHEMA_PATH) if SCHEMA_PATH.exists() else DEFAULT_SCHEMA_REF
        click.echo(starter_config(list(kinds), schema_ref=ref), nl=False)
        return
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists: choose another --out or add --force to replace it")
    ref = os.path.relpath(SCHEMA_PATH, out.resolve().parent) if SCHEMA_PATH.exists() else DEFAULT_SCHEMA_REF
    out.write_text(starter_config(list(kinds), schema_ref=ref), encoding="utf-8")
    click.echo(f"wrote {out}: edit it, then `datafactory config validate {out}`")


@config.command()
def schema() -> None:
    """Print the plant config JSON Schema (for editors: yaml-language-server / VS Code)."""
    click.echo(json.dumps(plant_config_schema(), indent=2, ensure_ascii=False))


def _load_or_exit(file: Path) -> PlantConfig:
    """The config, or ``ConfigError`` for the error boundary: exit 2 (bad input), "error: FILE: N error(s)" and
    one line per key path (``config validate`` itself reports invalid files as a failed check, exit 1)."""
    return load_config(file)


@config.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--gateway", "gateway_id", default=None, help="Gateway id [default: gateway.id in FILE].")
@click.option("--mqtt-url", default=None, help="Platform broker [default: DATAFACTORY_MQTT_URL].")
def diff(file: Path, gateway_id: str | None, mqtt_url: str | None) -> None:
    """Show how FILE differs from the config deployed to its gateway; exit 1 if they differ."""
    import asyncio

    from datafactory.errors import ConnectionLost
    from gateway.deploy import config_topic, deployed_config
    from gateway.deploy import diff as render_diff

    cfg = _load_or_exit(file)
    topic = config_topic(cfg, gateway_id)
    try:
        deployed = asyncio.run(deployed_config(mqtt_url, topic))
    except (ConnectionLost, ConfigError) as err:
        raise click.ClickException(str(err)) from None
    text = render_diff(cfg, deployed, local_name=str(file), topic=topic)
    if not text:
        click.echo(f"{file}: same as deployed ({cfg.config_version()})")
        return
    click.echo(text, nl=False)
    sys.exit(1)


@config.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--gateway", "gateway_id", default=None, help="Gateway id [default: gateway.id in FILE].")
@click.option("--mqtt-url", default=None, help="Platform broker [default: DATAFACTORY_MQTT_URL].")
@click.option(
    "--wait", default=15.0, show_default=True,
    help="Seconds to wait for the gateway to confirm the config and its sources' connections (0: don't).",
)
@click.option("--new-gateway", is_flag=True, help="Deploy although the gateway has never reported (its first config).")
def deploy(file: Path, gateway_id: str | None, mqtt_url: str | None, wait: float, new_gateway: bool) -> None:
    """Validate FILE and publish it retained to its gateway's config topic; the gateway applies it live.

    Exit 0 only when the gateway reports the new version with every source connected; 1 when it rejected the
    config or a source did not connect (named); 2 when the gateway has never reported (a typo?); 3 when the
    gateway did not confirm within --wait seconds."""
    import asyncio

    from datafactory.errors import ConnectionLost
    from gateway.deploy import config_topic, outcome, reported_gateways
    from gateway.deploy import deploy as do_deploy

    cfg = _load_or_exit(file)
    version = cfg.config_version()
    topic = config_topic(cfg, gateway_id)
    gateway = gateway_id or cfg.gateway.id
    try:
        if not new_gateway:
            known, site_gateways = asyncio.run(reported_gateways(mqtt_url, topic))
            if not known:
                others = ", ".join(site_gateways) or "none"
                click.echo(
                    f"error: gateway {gateway} of {cfg.enterprise.id}/{cfg.site.id} has never reported (gateways "
                    f"that have: {others}); check --gateway / gateway.id, or add --new-gateway to deploy anyway",
                    err=True,
                )
                sys.exit(2)
        status = asyncio.run(do_deploy(cfg, mqtt_url, topic=topic, wait_s=wait))
    except ConnectionLost as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"published {version} to {topic}")
    if wait <= 0:
        return
    code, line = outcome(cfg, status, gateway=gateway, topic=topic, wait_s=wait)
    if code:
        click.echo(f"error: {line}", err=True)
        sys.exit(code)
    click.echo(line)
