"""compose.yaml is a valid Compose file (checked by docker-compose itself) with the stack the docs describe."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
import warnings
from pathlib import Path

import click
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
SECRETS = {"POSTGRES_PASSWORD": "test-pg-secret", "GRAFANA_ADMIN_PASSWORD": "test-grafana-secret"}

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (.ci/run installs Debian's docker-compose package)",
)


def _config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "--project-directory", str(ROOT), *args, "config"],
        capture_output=True, text=True, env={**clean, **env}, timeout=60, check=False,
    )


@pytest.fixture(scope="module")
def parsed() -> dict:
    result = _config(SECRETS, "--profile", "demo")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_services_and_volumes(parsed: dict) -> None:
    assert set(parsed["services"]) == {
        "timescaledb", "mosquitto", "grafana", "migrate", "ingest", "analytics", "alerts", "simulator", "gateway",
    }
    assert set(parsed["volumes"]) == {"timescaledb-data", "mosquitto-data", "grafana-data", "gateway-state"}
    assert parsed["services"]["timescaledb"]["image"] == "timescale/timescaledb:2.28.3-pg15"  # pinned, not latest


def _mounts(service: dict) -> dict[str, str]:
    """target → source of a service's volumes, in docker-compose 1.29's short output form."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = v["source"], v["target"]
        out[target] = source
    return out


def test_mounts(parsed: dict) -> None:
    services = parsed["services"]
    assert _mounts(services["grafana"])["/etc/grafana/provisioning"] == str(ROOT / "grafana" / "provisioning")
    mosquitto = _mounts(services["mosquitto"])
    assert mosquitto["/mosquitto/config/mosquitto.conf"] == str(ROOT / "deploy" / "mosquitto" / "mosquitto.conf")
    assert (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").is_file()
    assert mosquitto["/mosquitto/data"] == "mosquitto-data"
    assert _mounts(services["timescaledb"])["/var/lib/postgresql/data"] == "timescaledb-data"


def test_datafactory_services_get_urls_and_secret_from_env(parsed: dict) -> None:
    for name in ("migrate", "ingest", "analytics", "alerts", "simulator", "gateway"):
        service = parsed["services"][name]
        env = service["environment"]
        assert env["DATAFACTORY_DATABASE_URL"].startswith("postgresql://postgres@timescaledb:5432/")
        assert env["DATAFACTORY_MQTT_URL"] == "mqtt://mosquitto:1883"
        assert env["PGPASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
        assert service["build"]["context"] == str(ROOT)
    assert parsed["services"]["gateway"]["network_mode"] == "service:simulator"
    # Host ports are published on the loopback interface only.
    for name in ("timescaledb", "mosquitto", "grafana"):
        for port in parsed["services"][name]["ports"]:
            assert (port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]) == "127.0.0.1"


def test_demo_services_are_behind_a_profile(parsed: dict) -> None:
    # `docker-compose config` lists every service; `up` starts profiled ones only with --profile demo.
    profiled = {name for name, service in parsed["services"].items() if service.get("profiles")}
    assert profiled == {"simulator", "gateway"}
    assert all(parsed["services"][name]["profiles"] == ["demo"] for name in profiled)


def test_missing_secret_is_a_clear_error() -> None:
    result = _config({"GRAFANA_ADMIN_PASSWORD": "x"})
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_no_secret_is_committed() -> None:
    text = COMPOSE.read_text()
    assert "PASSWORD: ${" in text  # every password comes from the environment / .env
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()


def test_grafana_gets_every_variable_its_provisioning_reads(parsed: dict) -> None:
    provisioning = ROOT / "grafana" / "provisioning"
    wanted = {
        m
        for path in provisioning.rglob("*.yaml")
        for m in re.findall(r"\$__env\{([A-Z0-9_]+)\}", path.read_text(encoding="utf-8"))
    }
    if not wanted:
        pytest.skip("grafana/provisioning has no data source files yet")
    missing = wanted - set(parsed["services"]["grafana"]["environment"])
    assert not missing, f"compose.yaml's grafana service lacks {sorted(missing)}"


def test_dockerfile_copies_every_package_and_ignores_local_state() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY (\S+) \./\1$", dockerfile, re.MULTILINE))
    assert packages <= copied, f"Dockerfile does not COPY {sorted(packages - copied)}"
    assert "COPY edge_configs ./edge_configs" in dockerfile  # the services' commands name edge_configs/…
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", ".df", ".env", ".git"} <= ignored


def _parses(command: click.Command, args: list[str], name: str = "datafactory") -> None:
    """Parse ``args`` as the CLI would (unknown options and missing required ones raise), without running it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Context.protected_args, until click 9
        ctx = command.make_context(name, list(args))
        if isinstance(command, click.Group):
            rest = [*ctx.protected_args, *ctx.args]
            sub = command.get_command(ctx, rest[0])
            assert sub is not None, f"no command {rest[0]!r} in {name}"
            _parses(sub, rest[1:], rest[0])


def test_service_commands_are_valid_datafactory_invocations(parsed: dict) -> None:
    from app.cli.main import cli

    checked = 0
    for name, service in parsed["services"].items():
        if service.get("image") != "datafactory:latest":
            continue
        if "entrypoint" in service:  # sh -c "datafactory … && datafactory …"
            script = service["entrypoint"][-1]
            invocations = [shlex.split(part)[1:] for part in re.findall(r"datafactory [^;&]+", script)]
        else:
            invocations = [service["command"]]
        for args in invocations:
            try:
                _parses(cli, args)
            except click.UsageError as err:
                pytest.fail(f"compose service {name}: datafactory {' '.join(args)}: {err}")
            checked += 1
    assert checked >= 6
