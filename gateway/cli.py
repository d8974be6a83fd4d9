"""``datafactory gateway run``, ``datafactory gateways`` and ``datafactory opcua browse|cert``."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from datafactory.config.loader import load_config
from datafactory.errors import ConfigError

_log = logging.getLogger(__name__)


@click.group()
def gateway() -> None:
    """Edge gateway."""


@gateway.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Plant config file.")
@click.option("--mqtt-url", default=None, help="Platform broker (default DATAFACTORY_MQTT_URL).")
@click.option("--state-dir", default=None, type=click.Path(path_type=Path), help="Buffer/certificate directory.")
def run(config_path: Path, mqtt_url: str | None, state_dir: Path | None) -> None:
    """Run the gateway described by --config until SIGTERM/SIGINT."""
    from gateway.runner import Gateway

    try:
        cfg = load_config(config_path)
    except ConfigError as err:
        click.echo(str(err), err=True)
        sys.exit(2)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    gw = Gateway(cfg, mqtt_url=mqtt_url, state_dir=state_dir)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await gw.run(stop)

    asyncio.run(main())


@click.group()
def opcua() -> None:
    """OPC-UA tools."""


@click.command()
def gateways() -> None:
    """List gateways from their retained status topics."""
    raise click.ClickException("not implemented yet")
