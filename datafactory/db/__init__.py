"""Database schema: migrations, connections, roles and row-level security, the audit table, TimescaleDB.
Core: imports nothing outside ``datafactory``; any service may import it.
"""
