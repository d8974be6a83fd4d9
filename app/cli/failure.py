"""The command line's one error boundary: every expected failure becomes one line and a documented exit code.

Commands raise; they do not print tracebacks or call ``sys.exit`` for failures. ``describe`` turns what reached
the top into ``(exit code, message)``: what is wrong and what to do. A traceback is shown only with ``-v``, or
for an unexpected error (a bug), which exits 70 and asks for a report.

Exit codes (docs/operators.md, "Exit codes"):

==== ==========================================================================================
0    success
1    the operation ran and failed: a verification, an audit, a publication refused, a restore mismatch
2    bad input: command-line usage, an invalid config file or setting, a file that cannot be read
3    a service cannot be reached or started: database, broker, OPC-UA server (check the URL, start the service)
4    the database exists but is not migrated, or is at another schema version: run ``datafactory db migrate``
5    permission denied by the database or the file system
70   an unexpected error (a bug): the traceback is printed; please report it
130  interrupted (Ctrl-C)
==== ==========================================================================================
"""

from __future__ import annotations

import errno

import click
import psycopg
from pydantic import ValidationError

from app.harness.process import ServiceStartError
from datafactory.errors import (
    ConfigError,
    ConnectionLost,
    ContractError,
    DataFactoryError,
    ProcessFailed,
    SchemaNotMigrated,
)

OK, FAILED, BAD_INPUT, UNREACHABLE, NOT_MIGRATED, PERMISSION, BUG, INTERRUPTED = 0, 1, 2, 3, 4, 5, 70, 130


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0].strip() if text else type(err).__name__


def _settings_problem(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(p) for p in e.get("loc", ()))
        name = f"DATAFACTORY_{field.upper()}" if err.title == "Settings" else field
        parts.append(f"{name}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def describe(err: BaseException) -> tuple[int, str]:
    """The exit code and one line for an exception that reached the command line's top level."""
    if isinstance(err, KeyboardInterrupt | click.exceptions.Abort):
        return INTERRUPTED, "interrupted"
    if isinstance(err, SchemaNotMigrated):
        return NOT_MIGRATED, f"{err}: run `datafactory db migrate`"
    if isinstance(err, ConfigError):
        return BAD_INPUT, str(err)  # its first line names the file, each following line a key path
    if isinstance(err, ValidationError):
        return BAD_INPUT, f"invalid setting — {_settings_problem(err)}"
    if isinstance(err, ConnectionLost):
        if "does not exist" in str(err) and "database" in str(err):
            return NOT_MIGRATED, f"{err}: run `datafactory db migrate` (it creates and migrates the database)"
        if not err.retryable:
            return BAD_INPUT, str(err)
        return UNREACHABLE, f"cannot reach {err}: check the URL and that the service is running"
    if isinstance(err, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
        return NOT_MIGRATED, f"the database schema is missing ({_first_line(err)}): run `datafactory db migrate`"
    if isinstance(err, psycopg.errors.InsufficientPrivilege):
        return PERMISSION, f"the database refused: {_first_line(err)} (connect as a role that has this right)"
    if isinstance(err, psycopg.OperationalError):
        return UNREACHABLE, (
            f"cannot use the database: {_first_line(err)} — check DATAFACTORY_DATABASE_URL (or --database-url) "
            "and that PostgreSQL is running"
        )
    if isinstance(err, psycopg.ProgrammingError) and "connection info string" in str(err):
        return BAD_INPUT, f"invalid database URL: {_first_line(err)} (use postgresql://user@host:port/database)"
    if isinstance(err, PermissionError):
        return PERMISSION, f"permission denied: {err.filename or _first_line(err)}"
    if isinstance(err, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return BAD_INPUT, f"no such file: {err.filename or _first_line(err)}"
    if isinstance(err, ConnectionRefusedError | TimeoutError) or (
        isinstance(err, OSError) and err.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ETIMEDOUT)
    ):
        return UNREACHABLE, f"cannot connect: {_first_line(err)}"
    if isinstance(err, DataFactoryError) and isinstance(err.__cause__, psycopg.Error | OSError):
        code, message = describe(err.__cause__)  # a service's wrapper of a database or file failure
        if code not in (BUG, FAILED):
            return code, message
    if isinstance(err, ProcessFailed):
        return err.exit_code, str(err)  # a worker process's own code: it printed the cause on its own line
    if isinstance(err, ServiceStartError):
        return UNREACHABLE, str(err)  # the service the command needs cannot run: like one that cannot be reached
    if isinstance(err, ContractError):
        return FAILED, str(err)
    if isinstance(err, DataFactoryError):
        return FAILED, _first_line(err) if "\n" not in str(err) else str(err)
    if isinstance(err, psycopg.Error):
        return FAILED, f"the database refused: {_first_line(err)}"
    return BUG, f"unexpected error {type(err).__name__}: {_first_line(err)} — please report it with the traceback"
