"""``datafactory gateway run``, ``datafactory gateways`` and ``datafactory opcua browse|cert``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import click

from datafactory.config.loader import load_config
from datafactory.errors import ConfigError
from datafactory.runtime import settle_heap
from gateway.opcua_session import quiet_asyncua

_log = logging.getLogger(__name__)


@click.group()
def gateway() -> None:
    """Edge gateway."""


@gateway.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Plant config file.")
@click.option("--mqtt-url", default=None, help="Platform broker [default: DATAFACTORY_MQTT_URL].")
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
    quiet_asyncua()
    try:
        gw = Gateway(cfg, mqtt_url=mqtt_url, state_dir=state_dir)
    except ConfigError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await gw.run(stop)

    settle_heap()  # the gateway is built: what it holds now is not garbage (datafactory.runtime)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    except ConfigError as err:  # a configuration error stopped the gateway (logged by the supervisor)
        click.echo(f"error: {err}", err=True)
        exit_code = 2
    else:
        exit_code = 0
    finally:
        stragglers = asyncio.all_tasks(loop)
        for task in stragglers:
            task.cancel()
        if stragglers:
            loop.run_until_complete(asyncio.wait(stragglers, timeout=3))
        if any(not t.done() for t in stragglers):
            # The buffer is closed and on disk; a library task that ignores cancellation must not turn a
            # SIGTERM into a hang (systemd would SIGKILL us anyway).
            _log.warning("exiting with %d library tasks still running", sum(not t.done() for t in stragglers))
            logging.shutdown()
            os._exit(exit_code)
        loop.close()
    sys.exit(exit_code)


@click.group()
def opcua() -> None:
    """OPC-UA tools: browse a server, create the gateway certificate."""


@opcua.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for the certificate and key.")
@click.option("--hostname", default=None, help="Host name in the certificate [default: this host].")
@click.option("--days", default=3650, show_default=True, help="Validity in days.")
@click.option("--force", is_flag=True, help="Replace an existing certificate.")
def cert(out: Path, hostname: str | None, days: int, force: bool) -> None:
    """Create the gateway's OPC-UA application certificate (DER) and private key (PEM) in --out."""
    from gateway.opcua_cert import create_certificate

    try:
        created = create_certificate(out, hostname=hostname, days=days, force=force)
    except FileExistsError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"certificate      {created.certificate}")
    click.echo(f"private key      {created.private_key}")
    click.echo(f"application URI  {created.application_uri}")
    click.echo(f"SHA-256          {created.fingerprint}")
    click.echo("Add the certificate to the OPC-UA server's trusted client certificates.")


@opcua.command()
@click.argument("endpoint")
@click.option("--depth", default=5, show_default=True, help="How many levels below Objects to walk.")
@click.option("--policy", default="none", show_default=True, help="Security policy (as in the config).")
@click.option("--mode", default="none", show_default=True, help="Security mode (as in the config).")
@click.option("--trust-fingerprint", multiple=True, help="Trusted server certificate SHA-256 (repeatable).")
@click.option("--trust-dir", default="", help="Directory of trusted server certificates.")
@click.option("--username-env", default=None, help="Environment variable holding the user name.")
@click.option("--password-env", default=None, help="Environment variable holding the password.")
@click.option(
    "--send-password-to-unverified-server",
    is_flag=True,
    help="With --policy none and a user name: send the password although no pinned certificate proves the server.",
)
@click.option("--emit-config", is_flag=True, help="Print a plant config binding the variables instead.")
@click.option("--cell", "cells", multiple=True, help="Cell path area/line/cell for --emit-config (repeatable).")
@click.option("--state-dir", default=None, type=click.Path(path_type=Path), help="Where the gateway certificate is.")
def browse(  # noqa: PLR0917 - one parameter per click option
    endpoint: str,
    depth: int,
    policy: str,
    mode: str,
    trust_fingerprint: tuple[str, ...],
    trust_dir: str,
    username_env: str | None,
    password_env: str | None,
    send_password_to_unverified_server: bool,
    emit_config: bool,
    cells: tuple[str, ...],
    state_dir: Path | None,
) -> None:
    """List the variables of the server at ENDPOINT: node id, browse path, data type, access level."""
    from pydantic import ValidationError

    from datafactory.config.models import AnonymousAuth, OpcUaSecurity, UsernameAuth
    from datafactory.errors import ConnectionLost
    from datafactory.settings import get_settings
    from gateway.opcua_browse import browse as do_browse
    from gateway.opcua_browse import emit_config as do_emit

    try:
        security = OpcUaSecurity.model_validate(
            {
                "policy": policy,
                "mode": mode,
                "trusted_server_fingerprints": list(trust_fingerprint),
                "trust_dir": trust_dir,
                "send_password_to_unverified_server": send_password_to_unverified_server,
            }
        )
        auth: object = AnonymousAuth(kind="anonymous")
        if username_env or password_env:
            auth = UsernameAuth(kind="username", username_env=username_env or "", password_env=password_env or "")
    except ValidationError as err:
        raise click.ClickException(str(err)) from None
    if emit_config and not cells:
        raise click.UsageError("--emit-config needs at least one --cell area/line/cell")
    quiet_asyncua()
    try:
        found = asyncio.run(
            do_browse(endpoint, security, auth, depth=depth, state_dir=state_dir or get_settings().state_dir)
        )
    except ConnectionLost as err:
        raise click.ClickException(str(err)) from None
    if emit_config:
        click.echo(do_emit(found, endpoint=endpoint, cells=list(cells), security=security), nl=False)
        return
    width = max((len(v.node_id) for v in found), default=7)
    click.echo(f"{'node id':<{width}}  {'data type':<14} {'access':<18} browse path")
    for v in found:
        click.echo(f"{v.node_id:<{width}}  {v.data_type:<14} {v.access:<18} {v.path}")
    click.echo(f"{len(found)} variables", err=True)


@click.command()
@click.option("--mqtt-url", default=None, help="Platform broker [default: DATAFACTORY_MQTT_URL].")
@click.option("--enterprise", default=None, help="Only this enterprise.")
@click.option("--wait", default=2.0, show_default=True, help="Seconds to collect retained status messages.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def gateways(mqtt_url: str | None, enterprise: str | None, wait: float, as_json: bool) -> None:
    """List gateways from their retained status topics: state, config version, buffer depth."""
    import orjson

    from datafactory.errors import ConnectionLost
    from gateway.deploy import list_gateways

    try:
        rows = asyncio.run(list_gateways(mqtt_url, enterprise=enterprise, wait_s=wait))
    except ConnectionLost as err:
        raise click.ClickException(str(err)) from None
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        click.echo("no gateways found")
        return
    click.echo(f"{'gateway':<40} {'state':<8} {'config':<13} {'buffered':>9} {'dropped':>8} {'refused':>8}  sources")
    for r in rows:
        per_source = {k: v for k, v in (r.get("sources") or {}).items() if isinstance(v, dict)}
        sources = ", ".join(
            f"{k}={v.get('state')}{_refused(v)}{_nodes_summary(v)}" for k, v in per_source.items()
        )
        # Items a source could not read (bad node ids, refused subscriptions): the gateway runs, those signals don't.
        refused = sum(int(v.get("items_refused") or 0) for v in per_source.values())
        state = "online" if r.get("online") else "OFFLINE"
        buffered = (r.get("buffer") or {}).get("samples", "-")
        dropped = (r.get("dropped") or {}).get("buffer_overflow", 0)
        version = r.get("config_version", "-")
        click.echo(
            f"{r['path']:<40} {state:<8} {version!s:<13} {buffered!s:>9} {dropped!s:>8} {refused:>8}  {sources}"
        )


def _refused(source: dict[str, object]) -> str:
    count = source.get("items_refused")
    return f" ({count} items refused)" if isinstance(count, int) and count else ""


def _nodes_summary(source: dict[str, object]) -> str:
    """``[nodes born 2/3, stale deaths 1, …]`` for a source with Sparkplug per-node state, else ""."""
    nodes = source.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        return ""
    states = [n for n in nodes.values() if isinstance(n, dict)]
    parts = [f"nodes born {sum(n.get('state') == 'born' for n in states)}/{len(states)}"]
    for key in ("undecodable", "seq_gaps", "stale_deaths", "unborn_data", "rebirth_requests"):
        total = sum(int(n.get(key) or 0) for n in states)
        if total:
            parts.append(f"{key.replace('_', ' ')} {total}")
    return "[" + ", ".join(parts) + "]"
