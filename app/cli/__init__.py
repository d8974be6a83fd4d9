"""The ``datafactory`` command line: a lazy table of every service's commands plus config, db and demo.
Application layer: may import the core and every service; imported only by tests and benchmarks.
"""
