"""Alerting service: rules from the plant configs evaluated on the database, alert lifecycle, notifications.

Imports only the core ``datafactory`` package; every other service's results are read through SQL.
"""
