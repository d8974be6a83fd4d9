"""Application layer: the ``datafactory`` command line (``app.cli``) and the service harness (``app.harness``).
The composition root — the only package that may import the services; nothing but tests and benchmarks imports it.
"""
