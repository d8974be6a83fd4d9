"""``ingest run --processes N``: one ingest service as N worker processes in one MQTT share group.

A worker process does its Python work — MQTT, decoding, preparing batches — under one interpreter lock, so it
uses about one core however many writer lanes it has. N processes share the subscription
(``$share/<group>/<filter>``, each data message goes to one of them) and each has its own lanes, caches, session
and ``ingest_health`` row, exactly as N workers started by hand with ``--share-group`` (docs/ingest.md, "Scaling
with workers"); this module only starts and supervises them as one service.

The children are ``datafactory ingest run`` with the parent's options, ``--worker <worker>-<k>``, the share
group (``--share-group``, else the worker's name) and ``--mqtt-protocol 5``: shared subscriptions are MQTT 5
(an MQTT 3.1.1 session would receive every message in every process). The database and broker URLs reach them
through the environment, not their command lines, which any local user can read.

Supervision is fail-fast: a child that exits while the service is running stops the others and the service
exits with the child's code (the child has printed its own one-line error), so the service manager restarts
the whole group; messages in flight stay unacknowledged in the children's persistent sessions and are
redelivered. SIGTERM or SIGINT stops every child cleanly; a child whose supervisor has died (``PARENT_ENV``
names it) stops by itself within a second, so no orphaned worker keeps a session nobody supervises.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datafactory.errors import ProcessFailed

MAX_PROCESSES = 16
_STOP_TIMEOUT_S = 60.0
PARENT_ENV = "DATAFACTORY_INGEST_SUPERVISOR_PID"  # set in each child: the supervisor's process id


@dataclass(frozen=True)
class Child:
    worker: str
    argv: list[str]


def children(
    *, worker: str, share_group: str | None, processes: int, options: Sequence[str], verbose: int
) -> list[Child]:
    """The child processes' names and command lines; ``options`` are the parent's own ``ingest run`` options
    other than the worker, the share group, the URLs, the protocol and ``--processes``."""
    group = share_group or worker
    head = [sys.executable, "-m", "app", *(["-v"] * verbose), "ingest", "run"]
    out = []
    for k in range(1, processes + 1):
        name = f"{worker}-{k}"
        argv = [*head, *options, "--worker", name, "--share-group", group, "--mqtt-protocol", "5"]
        out.append(Child(name, argv))
    return out


def supervise(
    kids: Sequence[Child], *, env: Mapping[str, str], stopping: threading.Event, poll_s: float = 0.2
) -> None:
    """Run the children until ``stopping`` is set (then stop them all) or one exits (then stop the others and
    raise ``ProcessFailed`` with its exit code)."""
    procs: list[subprocess.Popen[bytes]] = []
    child_env = {**os.environ, **env, PARENT_ENV: str(os.getpid())}
    try:
        for kid in kids:
            procs.append(subprocess.Popen(kid.argv, env=child_env))
        while not stopping.wait(poll_s):
            for kid, proc in zip(kids, procs, strict=True):
                code = proc.poll()
                if code is not None:
                    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                    raise ProcessFailed(
                        f"ingest process {kid.worker} {how}; the other {len(kids) - 1} were stopped, nothing"
                        " unstored was acknowledged: restart the service",
                        code if code > 0 else 1,
                    )
    finally:
        stop_all(procs)


def orphaned() -> bool:
    """In a child: True once the supervisor that started it is gone (the child has been re-parented)."""
    parent = os.environ.get(PARENT_ENV)
    return parent is not None and parent.isdigit() and os.getppid() != int(parent)


def stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running, then wait for each; one that does not stop in time is killed."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # each finishes the batches in hand and leaves the rest to the broker
    for proc in procs:
        try:
            proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
