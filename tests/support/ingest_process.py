"""``datafactory ingest run`` as the ingest tests start it: a real worker process on the test's topic prefix.

Its stderr is read from the start by a thread, so a chatty worker (``-v``) never blocks on a full pipe while a
test is busy elsewhere, and every line is kept for the test's assertions and failure messages.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class IngestProcess:
    """One ``ingest run`` process: worker ``w-<enterprise>`` on ``df/v1/<enterprise>/#``, health every 0.5 s."""

    def __init__(self, db_url: str, mqtt_url: str, enterprise: str, *extra: str, verbose: bool = False) -> None:
        argv = [
            sys.executable, "-m", "app", *(["-v"] if verbose else []), "ingest", "run",
            "--database-url", db_url, "--mqtt-url", mqtt_url, "--topic-filter", f"df/v1/{enterprise}/#",
            "--worker", f"w-{enterprise}", "--session-expiry-s", "300", "--health-interval-s", "0.5",
            "--batch-wait-ms", "50", *extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self._lines: list[str] = []
        self._running = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self._lines.append(line)
            # not libpq's "Is the server running on …": the worker's own line starts with its name
            if line.startswith("ingest worker ") and " running on " in line:
                self._running.set()

    def log(self) -> str:
        return "".join(self._lines)

    def wait_running(self, timeout_s: float = 60) -> None:
        """Until the worker has subscribed ("running on <subscriptions>"); its database may still be down."""
        if self._running.wait(timeout_s):
            return
        state = "exited" if self.proc.poll() is not None else f"not running after {timeout_s:.0f} s"
        raise AssertionError(f"ingest worker did not subscribe ({state}):\n{self.log()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout_s: float = 60) -> tuple[int, str]:
        """SIGTERM (if still running) and the exit code with the whole log; killed if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._reader.join(10)
            return -1, f"ingest did not stop within {timeout_s:.0f} s of SIGTERM:\n{self.log()}"
        self._reader.join(10)
        return self.proc.returncode, self.log()

    def wait_exit(self, timeout_s: float) -> tuple[int, str]:
        """Wait for the worker to stop by itself; SIGTERM it only if it does not (then the test fails on the code)."""
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return self.terminate()[0] or -1, "ingest did not stop by itself"
        self._reader.join(10)
        return self.proc.returncode, self.log()

    def poll(self) -> int | None:
        return self.proc.poll()
