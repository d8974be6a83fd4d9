"""The ``datafactory`` command line."""
