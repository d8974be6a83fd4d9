"""`datafactory opcua cert` and `opcua browse [--emit-config]` against a real asyncua server."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.cli.main import cli
from datafactory.config.loader import load_config_text
from datafactory.errors import ConfigError
from gateway.opcua_browse import signal_name
from tests.support.gateway_env import OpcUaTestServer, free_port


def test_signal_names_are_valid_and_unique() -> None:
    taken: set[str] = set()
    assert signal_name("Objects/Press 1/Spindle Power", taken) == "spindle_power"
    assert signal_name("Objects/Press 2/Spindle Power", taken) == "spindle_power_2"
    assert signal_name("Objects/X/°C", taken) == "c"
    assert signal_name("Objects/X/温度", taken) == "signal"


def test_cert_creates_certificate_and_refuses_to_overwrite(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["opcua", "cert", "--out", str(tmp_path), "--hostname", "edge-1"])
    assert result.exit_code == 0, result.output
    assert "urn:datafactory:gateway:edge-1" in result.output
    assert (tmp_path / "gateway-cert.der").stat().st_size > 500
    assert (tmp_path / "gateway-key.pem").stat().st_mode & 0o077 == 0
    again = runner.invoke(cli, ["opcua", "cert", "--out", str(tmp_path)])
    assert again.exit_code != 0 and "already exists" in again.output


@pytest.mark.integration
def test_browse_lists_variables_and_emits_a_valid_config(tmp_path) -> None:
    server = OpcUaTestServer(free_port(), {"Spindle Power": 1.5, "State": 100, "Good Count": 7}).start()
    try:
        runner = CliRunner()
        listed = runner.invoke(cli, ["opcua", "browse", server.endpoint, "--depth", "3"])
        assert listed.exit_code == 0, listed.output
        assert "ns=2;s=Spindle Power" in listed.output and "Objects/Plant/Spindle Power" in listed.output
        assert "Double" in listed.output and "read" in listed.output
        emitted = runner.invoke(
            cli, ["opcua", "browse", server.endpoint, "--emit-config", "--cell", "machining/line-1/cnc-01"]
        )
        assert emitted.exit_code == 0, emitted.output
        # The emitted config names what only the integrator knows as REPLACE: validation refuses exactly those.
        with pytest.raises(ConfigError) as refused:
            load_config_text(emitted.stdout)
        assert {p for p, _ in refused.value.problems} == {"enterprise.name", "enterprise.town"}
        filled = emitted.stdout.replace("REPLACE: registered legal name", "Acme Precision").replace("REPLACE", "长安镇")
        cfg = load_config_text(filled)
        assert sorted(b.signal for b in cfg.bindings()) == ["good_count", "spindle_power", "state"]
        assert {b.cell for b in cfg.bindings()} == {"machining/line-1/cnc-01"}
    finally:
        server.close()
