"""The city industry bureau: ``statistics`` (registry, reports, aggregates, disclosure control, macro), ``bulletin``,
``catalog``, ``opendata``. A service: imports only the core; composed by ``app`` (``datafactory bureau …``).
"""
