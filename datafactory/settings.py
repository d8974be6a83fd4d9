"""Runtime settings from the environment (``DATAFACTORY_*``). Secrets live here, never in committed configs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/datafactory"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATAFACTORY_", extra="ignore")

    database_url: str = Field(default=DEFAULT_DATABASE_URL, description="PostgreSQL/TimescaleDB connection URL.")
    mqtt_url: str = Field(default=DEFAULT_MQTT_URL, description="Broker URL, mqtt://[user@]host:port or mqtts://.")
    mqtt_password: SecretStr | None = Field(default=None, description="Broker password (never logged).")
    state_dir: Path = Field(default=Path(".df"), description="Local state: buffers, certificates, embedded services.")
    timescale_retention_days: int | None = Field(
        default=None, description="Drop sample chunks older than this (TimescaleDB / partitions). Off by default."
    )
    timescale_chunk_interval: str = Field(default="1 day", description="Hypertable chunk / partition interval.")
    timescale_compress_after: str = Field(default="7 days", description="Compress chunks older than this.")


    @field_validator("database_url")
    @classmethod
    def _database_url(cls, url: str) -> str:
        return check_database_url(url)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        return check_mqtt_url(url)


DATABASE_SCHEMES = ("postgresql", "postgres")
MQTT_SCHEMES = ("mqtt", "mqtts", "tcp", "ssl")


def check_database_url(url: str) -> str:
    """A database URL with its scheme and host, or ValueError saying what is wrong (never echoing a password)."""
    parts = urlsplit(url)
    if parts.scheme not in DATABASE_SCHEMES or not parts.netloc:
        raise ValueError(
            f"{redact_url(url)!r} is not a PostgreSQL URL: write postgresql://user@host:port/database"
        )
    return url


def check_mqtt_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in MQTT_SCHEMES or not parts.hostname:
        raise ValueError(f"{redact_url(url)!r} is not a broker URL: write mqtt://host:port (or mqtts:// for TLS)")
    if parts.password is not None:
        raise ValueError(
            f"{redact_url(url)!r} carries a password: put it in DATAFACTORY_MQTT_PASSWORD, never in the URL"
        )
    return url


def get_settings() -> Settings:
    return Settings()


def redact_url(url: str) -> str:
    """A URL with any password replaced, safe to print or log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
