"""Local service processes for the demo and for fault-injection tests: a private MQTT broker and a private
PostgreSQL, each a real server in its own child process, on a fixed 127.0.0.1 port, with start/stop/kill/restart.

Production runs the real services (see ``compose.yaml``); these exist so ``datafactory demo`` works on a fresh
machine and so tests can stop and restart a service without touching the shared one.
"""

from datafactory.services.broker import EmbeddedBroker, MosquittoBroker, start_default_broker
from datafactory.services.postgres import LocalPostgres
from datafactory.services.process import ServiceStartError, free_port

__all__ = [
    "EmbeddedBroker",
    "LocalPostgres",
    "MosquittoBroker",
    "ServiceStartError",
    "free_port",
    "start_default_broker",
]
