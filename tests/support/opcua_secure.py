"""Secure asyncua test servers: a server certificate, a user manager that counts logins, client-cert checks."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway import opcua_session
from tests.support.gateway_env import OpcUaTestServer, free_port

SERVER_URI = "urn:datafactory:test-server"


class Users:
    """Accepts operator/s3cret; records every login attempt (user name and the password as received)."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str | None, Any]] = []
        self.lock = threading.Lock()

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None):
        if username is None and certificate is None:
            return User(role=UserRole.User)  # anonymous, where the server offers it
        with self.lock:
            self.attempts.append((username, password))
        if username == "operator" and password == "s3cret":
            return User(role=UserRole.User)
        return None


def server_certificate(directory: Path, name: str = "server") -> tuple[Path, Path, str]:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"df test {name}",
        {},
        [x509.UniformResourceIdentifier(SERVER_URI), x509.DNSName("127.0.0.1")],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}-cert.der", directory / f"{name}-key.pem"
    der = cert.public_bytes(Encoding.DER)
    cert_path.write_bytes(der)
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path, opcua_session.fingerprint(der)


def secure_server(
    tmp_path: Path,
    policies: list[ua.SecurityPolicyType],
    *,
    users: Users | None = None,
    names: dict[str, Any] | None = None,
    port: int | None = None,
    certificate: tuple[Path, Path, str] | None = None,
    client_validator: Any = None,
    anonymous: bool = False,
) -> tuple[OpcUaTestServer, str, Path]:
    """A started server with the given policies; returns it, its certificate's fingerprint and the cert file."""
    cert_path, key_path, fp = certificate or server_certificate(tmp_path)

    async def setup(server: Any) -> None:
        await server.set_application_uri(SERVER_URI)
        await server.load_certificate(str(cert_path))
        await server.load_private_key(str(key_path))
        server.set_security_policy(policies)
        tokens = [ua.UserNameIdentityToken] + ([ua.AnonymousIdentityToken] if anonymous else [])
        server.set_identity_tokens(tokens)
        if client_validator is not None:
            server.set_certificate_validator(client_validator)

    server = OpcUaTestServer(
        port or free_port(), names or {"Power": 0.0}, setup=setup, user_manager=users or Users()
    ).start()
    return server, fp, cert_path
