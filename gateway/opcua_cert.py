"""``datafactory opcua cert``: the gateway's OPC-UA application instance certificate.

A self-signed RSA-2048 / SHA-256 certificate per OPC 10000-6 §6.2.2: the application URI
(``urn:datafactory:gateway:<host>``) and the host name in subjectAltName, client and server authentication
extended key usage. The server operator trusts it (copies the DER file into the server's trust list); the
gateway reads the application URI back from the certificate, so the two always match.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.opcua_session import fingerprint

CERT_NAME = "gateway-cert.der"
KEY_NAME = "gateway-key.pem"


@dataclass(frozen=True, slots=True)
class CreatedCertificate:
    certificate: Path
    private_key: Path
    application_uri: str
    fingerprint: str


def create_certificate(
    out: Path, *, hostname: str | None = None, days: int = 3650, force: bool = False
) -> CreatedCertificate:
    host = hostname or socket.gethostname()
    uri = f"urn:datafactory:gateway:{host}"
    cert_path, key_path = out / CERT_NAME, out / KEY_NAME
    if not force and (cert_path.exists() or key_path.exists()):
        raise FileExistsError(f"{cert_path} or {key_path} already exists (use --force to replace them)")
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"datafactory gateway@{host}",
        {"organizationName": "datafactory"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(host)],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
        days=days,
    )
    out.mkdir(parents=True, exist_ok=True)
    der = cert.public_bytes(Encoding.DER)
    cert_path.write_bytes(der)
    key_path.touch(mode=0o600)
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return CreatedCertificate(cert_path, key_path, uri, fingerprint(der))
