"""``datafactory grafana provision|check|deploy``: write the provisioning tree, check it is current, or upload
the folders, data sources and dashboards to a running Grafana over its HTTP API."""

from __future__ import annotations

import os
from pathlib import Path

import click

from grafana import provision
from grafana.datasources import plants_from_configs


@click.group()
def grafana() -> None:
    """Grafana dashboards generated from code."""


@grafana.command("provision")
@click.option("--out", type=click.Path(path_type=Path), default=provision.DEFAULT_OUT, show_default=True,
              help="Directory Grafana mounts as /etc/grafana/provisioning.")
@click.option("--configs", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=provision.DEFAULT_CONFIGS, show_default=True,
              help="Edge configs (*.yaml): one plant data source per plant found here.")
def provision_cmd(out: Path, configs: Path) -> None:
    """Write data source, dashboard provider, dashboard and alert-rule files."""
    files = provision.render(plants_from_configs(configs), configs=provision.plant_configs(configs))
    written = provision.write(out, files)
    click.echo(f"wrote {len(written)} files under {out}")


@grafana.command("check")
@click.option("--out", type=click.Path(path_type=Path), default=provision.DEFAULT_OUT, show_default=True,
              help="Provisioning directory to compare with the generated files.")
@click.option("--configs", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=provision.DEFAULT_CONFIGS, show_default=True,
              help="Edge configs (*.yaml) whose plants the provisioning must cover.")
def check_cmd(out: Path, configs: Path) -> None:
    """Exit non-zero when the provisioning tree differs from what the code generates."""
    stale = provision.stale_files(out, provision.render(plants_from_configs(configs),
                                                         configs=provision.plant_configs(configs)))
    if stale:
        raise click.ClickException("stale: " + ", ".join(stale) + " (run `datafactory grafana provision`)")
    click.echo("provisioning is current")


@grafana.command("deploy")
@click.option("--url", required=True, help="Grafana base URL, e.g. http://127.0.0.1:3000.")
@click.option("--configs", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=provision.DEFAULT_CONFIGS, show_default=True,
              help="Edge configs (*.yaml): one plant data source per plant found here.")
@click.option("--no-datasources", is_flag=True, help="Upload folders, dashboards and alert rules only.")
def deploy_cmd(url: str, configs: Path, no_datasources: bool) -> None:
    """Create or update folders, data sources, dashboards (by uid, overwriting) and the plants' alert rules.
    Credentials come from GRAFANA_TOKEN, or GRAFANA_USER and GRAFANA_PASSWORD; data source passwords from the same
    variables the provisioned files reference."""
    from grafana.deploy import DeployError, GrafanaTarget, deploy

    try:
        target = GrafanaTarget.from_env(url, os.environ)
        report = deploy(target, plants_from_configs(configs), datasources=not no_datasources, env=os.environ,
                        configs=provision.plant_configs(configs))
    except DeployError as err:
        raise click.ClickException(str(err)) from err
    click.echo(report.summary())
