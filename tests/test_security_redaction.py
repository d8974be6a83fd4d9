"""Secrets from the environment never reach a log line or an error message printed by our commands."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from datafactory.credentials import REDACTED, install_redaction, known_secrets, read_secret


def test_secrets_are_redacted_from_every_log_record(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    file_secret = tmp_path / "pw"
    file_secret.write_text("from-a-file-42\n")
    monkeypatch.setenv("DF_DB_INGEST_PASSWORD", "hunter2-very-secret")
    monkeypatch.setenv("DF_MQTT_PASSWORD_INGEST_FILE", str(file_secret))
    monkeypatch.setenv("DATAFACTORY_DATABASE_URL", "postgresql://df_ingest:url-pass-77@db:5432/x")
    assert read_secret("DF_MQTT_PASSWORD_INGEST") == "from-a-file-42"
    assert {"hunter2-very-secret", "from-a-file-42", "url-pass-77"} <= known_secrets()
    caplog.set_level(logging.DEBUG)
    install_redaction()
    log = logging.getLogger("datafactory.some.library")
    log.info("connecting as %s with hunter2-very-secret", "df_ingest")
    log.warning("url %s failed", "postgresql://df_ingest:url-pass-77@db:5432/x")
    try:
        raise RuntimeError("auth failed for password from-a-file-42")
    except RuntimeError:
        log.exception("broker refused")
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in ("hunter2-very-secret", "from-a-file-42", "url-pass-77"):
        assert secret not in text
    assert REDACTED in text and "connecting as df_ingest" in text
    handler = caplog.handler
    assert any(handler.format(r).count(REDACTED) for r in caplog.records if r.exc_info)
