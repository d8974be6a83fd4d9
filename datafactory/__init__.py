"""datafactory, the core: data contract, config models, settings, credentials, codes, db schema, errors, shared code.
Imports no other package of ours; every service and ``app`` import it (docs/architecture.md, tests/test_layering.py).

Services (``gateway``, ``ingest``, ``analytics``, ``simulator``, ``grafana``, ``bureau``, ``ops``) import this package,
never each other; only the application layer ``app`` (CLI, service harness) composes them.
``render`` is the CJK font embedding and headless-Chromium PDF printing the bulletin and the shift report share;
``alerting_sql`` the alert-condition SQL that ``alerts run`` and Grafana's generated rules share.
"""

__version__ = "0.1.0"
