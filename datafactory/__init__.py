"""datafactory: the shared package — data contract, config schema, settings, database schema and CLI.

Services (``gateway``, ``ingest``, ``analytics``, ``simulator``, ``grafana``, ``bureau``) import this package,
never each other.
"""

__version__ = "0.1.0"
