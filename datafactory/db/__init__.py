"""Database schema, migrations and the one place that knows about TimescaleDB (``db.timescale``)."""
