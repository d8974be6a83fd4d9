"""Opening an OPC-UA client session as a source config asks: endpoint, channel security, server trust, user.

Shared by the ``opcua`` source adapter and ``datafactory opcua browse``. Server trust is decided here before
any secure channel is opened: the server certificate offered for the configured policy/mode must be pinned
(``trusted_server_fingerprints``, SHA-256) or lie in ``trust_dir``; otherwise the connection is refused with
an error naming the certificate's fingerprint, so an operator can check it out of band and pin it.

asyncua errors are translated here into ``ConnectionLost``; nothing else of asyncua leaks out.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from datafactory.config.models import (
    CertificateAuth,
    OpcUaSecurity,
    SecurityMode,
    SecurityPolicy,
    UsernameAuth,
)
from datafactory.errors import ConnectionLost

_log = logging.getLogger(__name__)

POLICIES: dict[SecurityPolicy, type[security_policies.SecurityPolicy]] = {
    SecurityPolicy.BASIC256SHA256: security_policies.SecurityPolicyBasic256Sha256,
    SecurityPolicy.AES128_SHA256_RSAOAEP: security_policies.SecurityPolicyAes128Sha256RsaOaep,
    SecurityPolicy.AES256_SHA256_RSAPSS: security_policies.SecurityPolicyAes256Sha256RsaPss,
}
MODES = {
    SecurityMode.NONE: ua.MessageSecurityMode.None_,
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}
# Errors asyncua (and the sockets under it) raise for an unreachable, refusing or misbehaving server.
LIBRARY_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError, ua.UaError, ConnectionError)


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint of a DER certificate as lower-case hex without separators."""
    return hashlib.sha256(der).hexdigest()


def normalise_fingerprint(text: str) -> str:
    return text.replace(":", "").replace(" ", "").lower()


def trusted_fingerprints(security: OpcUaSecurity) -> set[str]:
    """Pinned fingerprints plus those of every certificate file (DER or PEM) in ``trust_dir``."""
    out = {normalise_fingerprint(f) for f in security.trusted_server_fingerprints}
    if security.trust_dir:
        for path in sorted(Path(security.trust_dir).glob("*")):
            if path.suffix.lower() not in (".der", ".pem", ".crt", ".cer"):
                continue
            data = path.read_bytes()
            try:
                cert = (
                    x509.load_pem_x509_certificate(data)
                    if b"-----BEGIN" in data
                    else x509.load_der_x509_certificate(data)
                )
            except ValueError:
                _log.warning("trust_dir file %s is not a certificate; ignored", path)
                continue
            out.add(fingerprint(cert.public_bytes(Encoding.DER)))
    return out


def _first_certificate(der_chain: bytes) -> bytes:
    """A server may send a chain; the application certificate is the first DER object."""
    if len(der_chain) < 4 or der_chain[0] != 0x30:
        return der_chain
    if der_chain[1] & 0x80:
        n = der_chain[1] & 0x7F
        length = int.from_bytes(der_chain[2 : 2 + n], "big") + 2 + n
    else:
        length = der_chain[1] + 2
    return der_chain[:length]


def application_uri(cert_path: Path) -> str:
    """The application URI in a certificate's subjectAltName; a client must present the one its cert names."""
    data = cert_path.read_bytes()
    cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else ""


async def connect(
    endpoint: str,
    security: OpcUaSecurity,
    auth: object,
    *,
    timeout_s: float = 5.0,
    state_dir: Path = Path(".df"),
    watchdog_interval_s: float = 1.0,
) -> Client:
    """A connected, activated client, or ``ConnectionLost`` saying why not (``retryable=False`` for trust,
    certificate and credential problems that need an operator)."""
    client = Client(endpoint, timeout=timeout_s, watchdog_intervall=watchdog_interval_s)
    client.name = client.description = "datafactory gateway"
    _set_user(client, endpoint, auth)
    try:
        if isinstance(auth, CertificateAuth):
            await client.load_client_certificate(auth.certificate)
            await client.load_private_key(Path(auth.private_key))
        if security.policy is not SecurityPolicy.NONE:
            await _secure(client, endpoint, security, state_dir)
        await client.connect(auto_reconnect=False)
    except ConnectionLost:
        raise
    except FileNotFoundError as err:
        raise ConnectionLost(endpoint, f"cannot read {err.filename}: {err.strerror}", retryable=False) from err
    except ua.uaerrors.BadUserAccessDenied as err:
        raise ConnectionLost(
            endpoint, "the server rejected the user identity (BadUserAccessDenied)", retryable=False
        ) from err
    except ua.uaerrors.BadIdentityTokenRejected as err:
        raise ConnectionLost(endpoint, "the server rejected the user identity token", retryable=False) from err
    except LIBRARY_ERRORS as err:
        raise ConnectionLost(endpoint, f"cannot connect: {type(err).__name__}: {err}") from err
    return client


def _set_user(client: Client, endpoint: str, auth: object) -> None:
    if not isinstance(auth, UsernameAuth):
        return
    user, password = os.environ.get(auth.username_env), os.environ.get(auth.password_env)
    missing = [name for name, value in ((auth.username_env, user), (auth.password_env, password)) if value is None]
    if missing:
        raise ConnectionLost(endpoint, f"environment variable(s) {', '.join(missing)} not set", retryable=False)
    client.set_user(user or "")
    client.set_password(password or "")


async def _secure(client: Client, endpoint: str, security: OpcUaSecurity, state_dir: Path) -> None:
    cert_path = Path(security.certificate) if security.certificate else state_dir / "opcua" / "gateway-cert.der"
    key_path = Path(security.private_key) if security.private_key else state_dir / "opcua" / "gateway-key.pem"
    if not cert_path.exists() or not key_path.exists():
        raise ConnectionLost(
            endpoint,
            f"gateway certificate {cert_path} or key {key_path} missing; create them with "
            f"'datafactory opcua cert --out {cert_path.parent}'",
            retryable=False,
        )
    uri = application_uri(cert_path)
    if uri:
        client.application_uri = uri
    policy = POLICIES[security.policy]
    mode = MODES[security.mode]
    endpoints = await client.connect_and_get_server_endpoints()
    try:
        chosen = Client.find_endpoint(endpoints, mode, policy.URI)
    except ua.UaError as err:
        offered = sorted({f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name}" for e in endpoints})
        raise ConnectionLost(
            endpoint,
            f"server offers no endpoint with {security.policy.value}/{security.mode.value} "
            f"(offers: {', '.join(offered)})",
            retryable=False,
        ) from err
    server_der = _first_certificate(chosen.ServerCertificate)
    fp = fingerprint(server_der)
    if fp not in trusted_fingerprints(security):
        raise ConnectionLost(
            endpoint,
            f"server certificate SHA-256 {fp} is not trusted: add it to trusted_server_fingerprints or trust_dir "
            "after checking it out of band",
            retryable=False,
        )
    await client.set_security(policy, str(cert_path), str(key_path), server_certificate=server_der, mode=mode)
