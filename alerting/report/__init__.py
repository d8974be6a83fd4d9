"""The shift hand-over report: data, HTML with SVG charts, PDF and CSV; ``datafactory report shift``.
Part of the ``alerting`` service: imports the core and ``alerting.*``; no other service imports it.
"""
