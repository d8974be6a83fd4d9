"""Names used in topics, signal paths and SQL-visible identifiers: validated here and nowhere else.

A name is lower-case ASCII letters, digits, ``_`` and ``-``, starting with a letter or digit, 1–64 characters.
That keeps names safe in MQTT topics (no ``+ # /``), file names, Grafana variables and SQL literals.
"""

from __future__ import annotations

import re

NAME_MAX = 64
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)


def validate_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it is a valid name, else raise ``ValueError`` saying why."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > NAME_MAX:
        raise ValueError(f"{what} {value[:20]!r}… is {len(value)} characters; the limit is {NAME_MAX}")
    if not _NAME_RE.match(value):
        raise ValueError(
            f"{what} {value!r} may contain only lower-case a-z, 0-9, '_' and '-', starting with a letter or digit"
        )
    return value


def is_valid_name(value: object) -> bool:
    return isinstance(value, str) and bool(_NAME_RE.match(value))
