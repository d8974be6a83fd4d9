"""OEE, energy and predictive-maintenance analytics: pure frame functions, the store, the watermarked run.
A service: imports only the core (``datafactory``); composed by ``app`` (``datafactory analytics``).

Pure functions from pandas frames to frames live in the modules named for what they compute; all database I/O is
in ``analytics.store``; ``analytics.run`` ties them together behind a watermark; ``analytics.cli`` is the command.
Times in frames are tz-aware UTC ``Timestamp`` columns named ``time`` (and ``time_end`` for intervals).
"""
