"""Service harness: private MQTT broker and PostgreSQL processes and the whole-pipeline runner of the demo and tests.
Application layer: may import the core and the services; imported only by ``app.cli``, tests and benchmarks.

Each service is a real server in its own child process, on a fixed 127.0.0.1 port, with start/stop/kill/restart.

Production runs the real services (see ``compose.yaml``); these exist so ``datafactory demo`` works on a fresh
machine and so tests can stop and restart a service without touching the shared one.
"""

from app.harness.broker import EmbeddedBroker, MosquittoBroker, start_default_broker
from app.harness.postgres import LocalPostgres
from app.harness.process import ServiceStartError, free_port

__all__ = [
    "EmbeddedBroker",
    "LocalPostgres",
    "MosquittoBroker",
    "ServiceStartError",
    "free_port",
    "start_default_broker",
]
