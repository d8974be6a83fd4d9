"""Ingest: subscribe to the unified namespace, validate, and store samples in PostgreSQL with binary COPY.
A service: imports only the core (``datafactory``); composed by ``app`` (``datafactory ingest``).

Public surface: ``IngestWorker`` (start/stop, usable in-process), ``IngestOptions`` and ``WorkerStats``.
"""

from ingest.health import WorkerStats
from ingest.options import IngestOptions
from ingest.worker import IngestWorker

__all__ = ["IngestOptions", "IngestWorker", "WorkerStats"]
