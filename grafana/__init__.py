"""Grafana dashboards as code: typed models, one module per dashboard, file provisioning and API deploy.
A service: imports only the core (``datafactory``); composed by ``app`` (``datafactory grafana``).
"""
