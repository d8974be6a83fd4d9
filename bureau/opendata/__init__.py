"""De-identified open-data export: pseudonymised keys, k-anonymous directories, CSV/JSON files with metadata.
Part of the ``bureau`` service: imports the core and ``bureau.*``; no other service imports it.
"""
