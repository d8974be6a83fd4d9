"""``datafactory`` entry point. Subcommands are loaded lazily so ``--help`` stays fast and a service's heavy
imports (asyncua, pandas, statsmodels) are paid only by the command that needs them.

Each entry maps a command name to ``module:attribute`` of a click command or group, plus its one-line help.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable

import click

from app.cli import failure

COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("app.cli.config_cmd:config", "Start, validate, diff and deploy plant configs; print the schema."),
    "db": ("app.cli.db_cmd:db", "Migrate the schema, manage partitions."),
    "simulate": ("simulator.cli:simulate", "Run the simulated plant (OPC-UA server + MQTT device) or backfill."),
    "gateway": ("gateway.cli:gateway", "Run an edge gateway."),
    "gateways": ("gateway.cli:gateways", "List gateways, their state and config version."),
    "opcua": ("gateway.cli:opcua", "OPC-UA tools: browse a server, create the gateway certificate."),
    "modbus": ("gateway.fieldbus_cli:modbus", "Modbus tools: scan a register range in every byte order."),
    "s7": ("gateway.fieldbus_cli:s7", "Siemens S7 tools: read one address."),
    "ingest": ("ingest.cli:ingest", "Run an ingest worker."),
    "analytics": ("analytics.cli:analytics", "Compute OEE, energy and maintenance results."),
    "alerts": ("alerting.cli:alerts", "Alert rules: run the alerting service, list, acknowledge, silence."),
    "report": ("alerting.report.cli:report", "Shift hand-over report (HTML, PDF, CSV), sent to the shift's receivers."),
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
        if not isinstance(command, click.Command):
            return _unavailable(cmd_name, target)
        _add_service_options(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


# Commands that never talk to the database or the broker (they read or write files only).
OFFLINE = frozenset({
    "config validate", "config schema", "config init", "opcua cert", "opcua browse", "grafana provision",
    "grafana check", "grafana deploy", "broker config", "demo", "modbus scan", "s7 read",
})


def _set_env(name: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value:
            os.environ[name] = value  # the option wins over the environment; settings read it from here

    return callback


def _add_service_options(command: click.Command, path: str = "") -> None:
    """Give every command that connects the same --database-url and --mqtt-url, with the same meaning."""
    path = f"{path} {command.name}".strip()
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_service_options(sub, path)
        return
    if path in OFFLINE:
        return
    present = {opt for p in command.params for opt in getattr(p, "opts", ())}
    for flag, env, what, default in (
        ("--database-url", "DATAFACTORY_DATABASE_URL", "PostgreSQL URL, postgresql://user@host:port/database",
         "postgresql://postgres@127.0.0.1:5432/datafactory"),
        ("--mqtt-url", "DATAFACTORY_MQTT_URL", "Broker URL, mqtt://host:port or mqtts://host:port",
         "mqtt://127.0.0.1:1883"),
    ):
        if flag not in present:
            command.params.append(click.Option(
                [flag], default=None, expose_value=False, is_eager=True, callback=_set_env(env),
                help=f"{what} [default: {env}, else {default}]",
            ))


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


def _verbose(argv: list[str]) -> bool:
    """Whether ``-v`` was given before the subcommand (the group's own option)."""
    for arg in argv:
        if not arg.startswith("-"):
            return False
        if arg in ("--verbose",) or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            return True
    return False


def main(argv: list[str] | None = None) -> None:
    """Run a command; expected failures end as one line on stderr and a documented exit code (app.cli.failure)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = cli.main(args=args, prog_name="datafactory", standalone_mode=False)
    except click.ClickException as err:  # usage errors and commands' own one-line failures
        # A command that wrapped a known failure (``raise ClickException(str(err)) from err`` or ``from None``)
        # still gets that failure's exit code and advice.
        cause = err.__cause__ or err.__context__
        code, message = failure.describe(cause) if cause is not None else (failure.BUG, "")
        if cause is None or code == failure.BUG:
            err.show()
            sys.exit(err.exit_code)
        if _verbose(args):
            traceback.print_exception(cause, file=sys.stderr)
        click.echo(f"error: {message}", err=True)
        sys.exit(code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except SystemExit:
        raise
    except BaseException as err:
        code, message = failure.describe(err)
        if code == failure.BUG or _verbose(args):
            traceback.print_exc(file=sys.stderr)
        click.echo(f"error: {message}", err=True)
        sys.exit(code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
