"""A server running as a child process on a fixed 127.0.0.1 TCP port: the lifecycle both local services share.

The port is chosen once (at construction) and kept across restarts so a client configured with the URL can
reconnect after ``restart()``, which is what the fault tests exercise. Children run in their own session so a
Ctrl-C on the terminal reaches the orchestrator first and it stops them in order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from datafactory.errors import DataFactoryError

_STOP_TIMEOUT_S = 15.0


class ServiceStartError(DataFactoryError):
    """A local service could not be started (binary missing, port taken, crashed on start-up)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def postgres_answers(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> bool:
    """True if a PostgreSQL server answers on host:port: it replies to an SSLRequest (PostgreSQL's 8-byte
    opening, which every server answers with one byte, ``S`` or ``N``, before any authentication). A port that
    accepts connections and says nothing, or says something else, is not a usable server."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
            return sock.recv(1) in (b"S", b"N")
    except OSError:
        return False


class ManagedProcess:
    """Start/stop/kill/restart of one server process whose readiness is "accepts TCP on 127.0.0.1:port".

    Subclasses provide ``_command()`` (argv) and may override ``_prepare()`` (write config files, init a data
    directory) which runs before every start.
    """

    name = "service"
    start_timeout_s = 20.0
    # The signal that asks the server for an orderly shutdown that does not wait for clients to leave.
    stop_signal = signal.SIGTERM

    def __init__(self, *, port: int | None, data_dir: Path) -> None:
        self.port = port if port is not None else free_port()
        self.data_dir = Path(data_dir)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _prepare(self) -> None:
        """Hook run before each start."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_options(self) -> dict[str, Any]:
        """Extra ``subprocess.Popen`` keyword arguments (environment, user to run as)."""
        return {}

    def _ready(self) -> bool:
        """True once the server serves clients; by default, once it accepts TCP connections."""
        return port_accepts(self.port, timeout=0.2)

    def start(self) -> Self:
        if self.is_running():
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if port_accepts(self.port):
            raise ServiceStartError(f"{self.name}: port 127.0.0.1:{self.port} is already in use")
        self._prepare()
        argv = self._command()
        self._log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._popen_options(),
            )
        except FileNotFoundError as err:
            self._close_log()
            raise ServiceStartError(f"{self.name}: cannot run {argv[0]!r}: {err.strerror}") from err
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                self._close_log()
                raise ServiceStartError(
                    f"{self.name} exited with code {code} on start-up; log {self.log_path}:\n{self._log_tail()}"
                )
            try:
                ready = self._ready()
            except ServiceStartError:
                self.kill()
                raise
            if ready:
                return
            time.sleep(0.05)
        self.kill()
        raise ServiceStartError(
            f"{self.name} did not accept connections on 127.0.0.1:{self.port} within {self.start_timeout_s:.0f} s; "
            f"log {self.log_path}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """Graceful shutdown (SIGTERM, then SIGKILL after ``timeout``); persistent state stays on disk."""
        self._signal_and_wait(self.stop_signal, timeout)

    def kill(self) -> None:
        """Abrupt death (SIGKILL to the server and every process it started), as a crash or power loss would be."""
        self._signal_and_wait(signal.SIGKILL, _STOP_TIMEOUT_S)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                # The child leads its own process group (start_new_session): SIGKILL takes its workers with it
                # (PostgreSQL backends would otherwise keep the shared memory and block the next start).
                if sig == signal.SIGKILL:
                    os.killpg(proc.pid, sig)
                else:
                    os.kill(proc.pid, sig)
                proc.wait(timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                # The whole group: a PostgreSQL backend outliving its postmaster would block the next start.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._proc = None
        self._close_log()
        # The port must be free again before a restart binds it; the kernel closes listeners with the process.
        deadline = time.monotonic() + 5
        while port_accepts(self.port, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<{type(self).__name__} 127.0.0.1:{self.port} {state}>"
