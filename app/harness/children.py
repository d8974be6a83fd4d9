"""Child processes of the demo: ``datafactory <command> …`` subprocesses with their own log files.

Each child runs in its own session so a Ctrl-C on the terminal reaches only the orchestrator, which then stops
the children in order (producers first, ingest last so it can drain what is in flight). ``stop()`` sends
SIGTERM — what Docker and systemd send — and SIGKILLs after a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


class Child:
    """One ``datafactory`` subcommand running as a child process, output appended to ``log_path``."""

    def __init__(self, name: str, args: list[str], *, log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "app.cli.main", *args]
        self.log_path = log_path
        self.env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"$ {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
            start_new_session=True,
        )

    @property
    def returncode(self) -> int | None:
        """None while running (or never started), else the exit code."""
        return None if self._proc is None else self._proc.poll()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_for_output(self, text: str, timeout_s: float, *, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """True once ``text`` appears in the child's output; False if it exits, ``timeout_s`` passes or
        ``cancelled()`` turns true first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.running() and not cancelled():
            try:
                if text in self.log_path.read_text(errors="replace"):
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the child to exit; its exit code, or None if it still runs after ``timeout_s``."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL the child's whole process group. Returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def log_tail(self, lines: int = 8) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def run_once(args: list[str], *, log_path: Path, env: dict[str, str], timeout_s: float) -> int:
    """Run ``datafactory <args>`` to completion (output to ``log_path``); returns the exit code, -9 on timeout."""
    child = Child(args[0], args, log_path=log_path, env=env)
    child.start()
    code = child.wait(timeout_s)
    child.stop(grace_s=5)
    return -9 if code is None else code
