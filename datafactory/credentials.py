"""Secrets come from the environment or from files, never from configs or command lines, and never reach a log.

``read_secret("DF_X_PASSWORD")`` returns the value of ``DF_X_PASSWORD`` or, when that is unset, the contents of the
file named by ``DF_X_PASSWORD_FILE`` (Docker/Kubernetes secrets), stripped of one trailing newline.
``install_redaction()`` adds a logging filter that replaces every known secret value in log records with ``***``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from datafactory.errors import ConfigError

_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PASSPHRASE|_KEY(_FILE)?$")
_MIN_SECRET_LEN = 4  # shorter values would redact ordinary words in log lines
REDACTED = "***"


def env_var_part(value: str) -> str:
    """An identifier part usable in an environment variable name: upper case, every other character ``_``."""
    return re.sub(r"[^A-Z0-9]", "_", value.upper())


def read_secret(var: str, env: Mapping[str, str] | None = None) -> str | None:
    """The secret in ``var`` or in the file named by ``var + '_FILE'``; None when neither is set."""
    env = os.environ if env is None else env
    value = env.get(var)
    if value:
        return value
    path = env.get(f"{var}_FILE")
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"${var}_FILE", [("(file)", f"cannot read secret file {path}: {err.strerror}")]) from None
    return text.removesuffix("\n").removesuffix("\r") or None


def known_secrets(env: Mapping[str, str] | None = None) -> set[str]:
    """Every secret value the process can see: password-like variables, their files, passwords in URLs."""
    env = os.environ if env is None else env
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if _SECRET_NAME.search(name):
            secret = read_secret(name.removesuffix("_FILE"), env) if name.endswith("_FILE") else value
            if secret:
                found.add(secret)
        elif "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.add(password)
    return {s for s in found if len(s) >= _MIN_SECRET_LEN}


class RedactingFilter(logging.Filter):
    """Replace secret values in a record's rendered message (and drop the args that carried them)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted(set(secrets), key=len, reverse=True)  # longest first: no partial leftovers

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def install_redaction(extra: Iterable[str] = ()) -> RedactingFilter:
    """Attach a redaction filter (secrets from the environment plus ``extra``) to every root handler.

    Handler-level, not logger-level, so records from every library logger pass through it too.
    """
    flt = RedactingFilter(known_secrets() | set(extra))
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()
    for handler in root.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(flt)
    return flt
