"""The project's one small error hierarchy.

Library exceptions (asyncua, paho, psycopg) are translated into these at adapter boundaries with
``raise ... from err``; messages name the endpoint, config path or offending value.
"""

from __future__ import annotations


class DataFactoryError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(DataFactoryError):
    """A configuration file or value is invalid. Carries every problem found, each with its key path."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path}: {msg}" for path, msg in problems)
        super().__init__(f"{source}: {len(problems)} error(s)\n{lines}")


class ContractError(DataFactoryError):
    """A topic or payload does not follow the data contract. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class ConnectionLost(DataFactoryError):
    """A connection to an external service failed. ``retryable`` tells the runner whether to back off and retry."""

    def __init__(self, endpoint: str, detail: str, *, retryable: bool = True) -> None:
        self.endpoint = endpoint
        self.detail = detail
        self.retryable = retryable
        super().__init__(f"{endpoint}: {detail}")


class SchemaNotMigrated(DataFactoryError):
    """The database lacks the schema (or the schema version) this code needs: ``datafactory db migrate`` fixes it."""


class ProcessFailed(DataFactoryError):
    """A child process of a supervised service exited on its own; ``exit_code`` is the code the service exits
    with (the child's, which printed its own one-line cause)."""

    def __init__(self, message: str, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(message)
