"""Security and operations: database roles and row-level security, broker credentials and ACLs, the hash-chained
audit trail, attack/misuse early warning, and verified backup and restore.

Public entry points other services may call: ``audit.record`` (append to the audit trail) and
``credentials.install_redaction`` (keep secrets out of log lines).
"""
