"""Bureau statistics and disclosure control: registry, reports import, facts, aggregates, SDC, publication, macro.
Part of the ``bureau`` service: imports the core and ``bureau.*``; no other service imports it.
"""
