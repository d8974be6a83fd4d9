"""Alerting: rules from the plant configs evaluated on the database, alert lifecycle, notifications, outbox.
A service: imports only the core (``datafactory``); other services' results are read through SQL; composed by ``app``.
"""
