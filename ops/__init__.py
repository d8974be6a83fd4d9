"""Operations: backup/restore, audit-trail verification, the attack/misuse watch detectors, broker-config generation.
A service: imports only the core (``datafactory``); composed by ``app`` (``datafactory backup|restore|audit|broker``).
"""
