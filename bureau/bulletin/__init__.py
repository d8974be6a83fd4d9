"""The bureau's monthly/quarterly bulletin: data read as the ``bureau`` role, charts, HTML page and PDF print.
Part of the ``bureau`` service: imports the core and ``bureau.*``; no other service imports it.
"""
