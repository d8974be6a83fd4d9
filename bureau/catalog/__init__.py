"""The resource catalogue (资源目录): dataset specs, entries built from the database catalog, grading, freshness.
Part of the ``bureau`` service: imports the core and ``bureau.*``; no other service imports it.
"""
