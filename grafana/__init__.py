"""Grafana dashboards as code: typed models, one module per dashboard, file provisioning and API deploy."""
