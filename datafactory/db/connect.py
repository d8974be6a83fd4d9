"""Connections and database creation."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from datafactory.errors import ConnectionLost
from datafactory.settings import redact_url


def connect(url: str, *, autocommit: bool = False, application_name: str = "datafactory") -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=autocommit, application_name=application_name, connect_timeout=10)
    except psycopg.OperationalError as err:
        # libpq's message spans lines ("connection to server … failed: …\n\tIs the server running…"): one line.
        detail = " ".join(part.strip() for part in str(err).strip().splitlines() if part.strip())
        raise ConnectionLost(redact_url(url), detail) from err
    except psycopg.ProgrammingError as err:
        raise ConnectionLost(redact_url(url), f"not a usable connection URL ({err})", retryable=False) from err


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist. Returns True if it was created."""
    name = database_name(url)
    try:
        maintenance = connect(with_database(url, "postgres"), autocommit=True)
    except ConnectionLost as err:
        # Name the database the user asked for, not the maintenance database we connected to to create it.
        raise ConnectionLost(redact_url(url), err.detail, retryable=err.retryable) from err
    with maintenance as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(url: str) -> None:
    name = database_name(url)
    with connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
