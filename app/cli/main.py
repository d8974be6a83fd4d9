"""``datafactory`` entry point. Subcommands are loaded lazily so ``--help`` stays fast and a service's heavy
imports (asyncua, pandas, statsmodels) are paid only by the command that needs them.

Each entry maps a command name to ``module:attribute`` of a click command or group, plus its one-line help.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("app.cli.config_cmd:config", "Validate, diff and deploy plant configs; print the schema."),
    "db": ("app.cli.db_cmd:db", "Migrate the schema, manage partitions."),
    "simulate": ("simulator.cli:simulate", "Run the simulated plant (OPC-UA server + MQTT device) or backfill."),
    "gateway": ("gateway.cli:gateway", "Run an edge gateway."),
    "gateways": ("gateway.cli:gateways", "List gateways, their state and config version."),
    "opcua": ("gateway.cli:opcua", "OPC-UA tools: browse a server, create the gateway certificate."),
    "ingest": ("ingest.cli:ingest", "Run an ingest worker."),
    "analytics": ("analytics.cli:analytics", "Compute OEE, energy and maintenance results."),
    "grafana": ("grafana.cli:grafana", "Write Grafana provisioning or deploy dashboards to a Grafana."),
    "bureau": ("bureau.cli:bureau", "City industry bureau: registry, reports import, statistics."),
    "city": ("simulator.city_cli:city", "Synthetic city of enterprises for the bureau."),
    "bulletin": ("bureau.bulletin.cli:bulletin", "Write the bureau's monthly or quarterly bulletin."),
    "catalog": ("bureau.catalog.cli:catalog", "Resource catalogue: list, show, export."),
    "opendata": ("bureau.opendata.cli:opendata", "Export de-identified open data."),
    "broker": ("ops.cli:broker", "Generate the Mosquitto configuration (credentials, ACLs)."),
    "audit": ("ops.cli:audit", "Verify the hash-chained audit trail."),
    "backup": ("ops.cli:backup", "Back up the database."),
    "restore": ("ops.cli:restore", "Restore a backup into a fresh database and verify it."),
    "demo": ("app.cli.demo:demo", "Run the simulated plant end to end and print a summary."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                return _unavailable(cmd_name, target)
            raise
        command = getattr(module, attr, None)
        return command if isinstance(command, click.Command) else _unavailable(cmd_name, target)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


def _unavailable(name: str, target: str) -> click.Command:
    @click.command(name=name, help=COMMANDS[name][1], context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def stub(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"'{name}' is not available in this build ({target} is missing)")

    return stub


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="datafactory")
def cli(verbose: int) -> None:
    """datafactory — industrial IoT manufacturing-data platform."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Every command, not only the security ones: passwords from the environment never reach a log line.
    from datafactory.credentials import install_redaction

    install_redaction()


def main() -> None:
    cli(prog_name="datafactory")


if __name__ == "__main__":
    main()
