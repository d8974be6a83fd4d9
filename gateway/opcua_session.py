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
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


_NOISE = ("Requested session timeout", "Sending plain-text password")


class _AsyncuaNoise(logging.Filter):
    """asyncua logs every endpoint at INFO, warns of the revised session timeout on each connect and logs a
    traceback whenever a server goes away; the gateway reports each of those once in its own words."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("asyncua"):
            return True
        if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
            return True  # -vv: everything, with tracebacks
        if record.levelno < logging.WARNING or record.getMessage().startswith(_NOISE):
            return False
        record.exc_info = record.exc_text = None
        return True


def quiet_asyncua() -> None:
    """Install the asyncua noise filter on every root handler (filters on a logger miss its children)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _AsyncuaNoise) for f in handler.filters):
            handler.addFilter(_AsyncuaNoise())


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


# What a failed connect raises: the library errors, and the AssertionError asyncua fails with when a server
# closes the channel in the middle of the secure handshake.
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (*LIBRARY_ERRORS, AssertionError)
_CERTIFICATE_REJECTED = {
    "BadCertificateUntrusted",
    "BadSecurityChecksFailed",
    "BadCertificateInvalid",
    "BadCertificateUriInvalid",
    "BadCertificateTimeInvalid",
    "BadCertificateIssuerTimeInvalid",
    "BadCertificateUseNotAllowed",
    "BadCertificateRevoked",
    "BadCertificateRevocationUnknown",
    "BadCertificateChainIncomplete",
    "BadCertificatePolicyCheckFailed",
}
_IDENTITY_REJECTED = {"BadUserAccessDenied", "BadIdentityTokenRejected", "BadIdentityTokenInvalid"}
_POLICY_REJECTED = {"BadSecurityPolicyRejected", "BadSecurityModeRejected"}


class _GatewayClient(Client):
    """asyncua's client with one hook: ``guard`` runs after CreateSession and before ActivateSession — the
    moment the server has shown its certificate and the user identity (the password) has not been sent yet."""

    guard: Callable[[Client], None] | None = None

    async def activate_session(
        self, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> ua.ActivateSessionResult:
        if self.guard is not None:
            self.guard(self)
        return await super().activate_session(username=username, password=password, certificate=certificate)


async def connect(
    endpoint: str,
    security: OpcUaSecurity,
    auth: object,
    *,
    timeout_s: float = 5.0,
    state_dir: Path = Path(".df"),
    watchdog_interval_s: float = 1.0,
) -> Client:
    """A connected, activated client, or ``ConnectionLost`` saying in one line why not (``retryable=False`` for
    trust, certificate, policy and credential problems that need an operator)."""
    client = _GatewayClient(endpoint, timeout=timeout_s, watchdog_intervall=watchdog_interval_s)
    client.name = client.description = "datafactory gateway"
    _set_user(client, endpoint, auth)
    cert_path, key_path = gateway_certificate_paths(security, state_dir)
    if security.policy is SecurityPolicy.NONE:
        client.guard = _server_check(endpoint, security, auth)
    try:
        if isinstance(auth, CertificateAuth):
            await client.load_client_certificate(auth.certificate)
            await client.load_private_key(Path(auth.private_key))
        if security.policy is not SecurityPolicy.NONE:
            await _secure(client, endpoint, security, cert_path, key_path)
        await client.connect(auto_reconnect=False)
    except ConnectionLost:
        raise
    except FileNotFoundError as err:
        raise ConnectionLost(endpoint, f"cannot read {err.filename}: {err.strerror}", retryable=False) from err
    except _CONNECT_ERRORS as err:
        client.disconnect_socket()
        raise _explain(err, endpoint, security, auth, cert_path, timeout_s=timeout_s) from err
    return client


def _explain(
    err: BaseException, endpoint: str, security: OpcUaSecurity, auth: object, cert_path: Path, *, timeout_s: float
) -> ConnectionLost:
    """One line an operator can act on, for every way a connection attempt is known to fail."""
    name = type(err).__name__
    code = err.code if isinstance(err, ua.UaStatusCodeError) else None
    status = ua.StatusCode(code).name if code is not None else name
    secure = security.policy is not SecurityPolicy.NONE
    if status in _CERTIFICATE_REJECTED or (secure and isinstance(err, AssertionError)):
        # node-opcua closes the channel on an untrusted client certificate; asyncua then fails an assertion
        # while reading the reply, so in a secure mode that is what an AssertionError means.
        fp = _file_fingerprint(cert_path) if secure else "none: policy none sends no gateway certificate"
        return ConnectionLost(
            endpoint,
            f"the server rejected this gateway's certificate {cert_path} (SHA-256 {fp}; {status}): trust it on "
            "the server (most servers put it in their rejected folder)",
            retryable=False,
        )
    if status in _IDENTITY_REJECTED:
        who = f"user from ${auth.username_env}" if isinstance(auth, UsernameAuth) else type(auth).__name__
        return ConnectionLost(
            endpoint,
            f"the server rejected the user identity ({who}; {status}): check the user name and password",
            retryable=False,
        )
    if status in _POLICY_REJECTED:
        return ConnectionLost(
            endpoint,
            f"the server does not offer {security.policy.value}/{security.mode.value} ({status})",
            retryable=False,
        )
    if isinstance(err, TimeoutError):
        return ConnectionLost(endpoint, f"no answer within {timeout_s:g} s (is the address right and reachable?)")
    if isinstance(err, ConnectionRefusedError):
        return ConnectionLost(endpoint, "connection refused: nothing listens there (is the server running?)")
    if isinstance(err, OSError):
        return ConnectionLost(endpoint, f"cannot connect: {err.strerror or name}")
    if isinstance(err, AssertionError | ConnectionError):
        return ConnectionLost(endpoint, f"the server closed the connection during the handshake ({name})")
    return ConnectionLost(endpoint, f"cannot connect: {status}{': ' + str(err) if str(err) else ''}")


def describe(err: BaseException) -> str:
    """A library error in words: the status code name for an OPC-UA status, never an empty ``TimeoutError: ``."""
    if isinstance(err, ua.UaStatusCodeError) and err.code is not None:
        return ua.StatusCode(err.code).name
    if isinstance(err, TimeoutError):
        return "the server did not answer in time"
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _file_fingerprint(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "unreadable"
    if b"-----BEGIN" in data:
        data = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return fingerprint(data)


def _server_check(endpoint: str, security: OpcUaSecurity, auth: object) -> Callable[[Client], None] | None:
    """With policy none the channel proves nothing about the server. Before a password is sent, require that
    it goes encrypted to a pinned certificate — only the holder of that certificate's key can read it — unless
    the config explicitly accepts the risk. Pinned fingerprints are checked whether or not a secret is sent."""
    trusted = trusted_fingerprints(security)
    sends_secret = isinstance(auth, UsernameAuth)
    opt_in = security.send_password_to_unverified_server
    if sends_secret and not trusted and not opt_in:
        raise ConnectionLost(endpoint, NONE_WITH_PASSWORD, retryable=False)
    if not trusted and not sends_secret:
        return None

    def check(client: Client) -> None:
        if trusted:
            peer = client.security_policy.peer_certificate
            if not peer:
                raise ConnectionLost(
                    endpoint, "the server presented no certificate to check against the pinned ones", retryable=False
                )
            fp = fingerprint(_first_certificate(peer))
            if fp not in trusted:
                raise ConnectionLost(endpoint, _untrusted(fp), retryable=False)
        if sends_secret and not opt_in:
            uri = client.server_policy(ua.UserTokenType.UserName).SecurityPolicyUri
            if not uri or uri == security_policies.SecurityPolicyNone.URI:
                raise ConnectionLost(
                    endpoint,
                    "the server would receive the password unencrypted (its user-token policy is none): use a "
                    "secure policy, or set security.send_password_to_unverified_server",
                    retryable=False,
                )

    return check


NONE_WITH_PASSWORD = (
    "policy none with a user name would hand the password to whatever answers at this address: pin the server "
    "certificate (security.trusted_server_fingerprints or trust_dir), use a secure policy, or accept the risk "
    "with security.send_password_to_unverified_server: true"
)


def _untrusted(fp: str) -> str:
    return (
        f"server certificate SHA-256 {fp} is not trusted: add it to trusted_server_fingerprints or trust_dir "
        "after checking it out of band"
    )


def gateway_certificate_paths(security: OpcUaSecurity, state_dir: Path) -> tuple[Path, Path]:
    cert = Path(security.certificate) if security.certificate else state_dir / "opcua" / "gateway-cert.der"
    key = Path(security.private_key) if security.private_key else state_dir / "opcua" / "gateway-key.pem"
    return cert, key


def _set_user(client: Client, endpoint: str, auth: object) -> None:
    if not isinstance(auth, UsernameAuth):
        return
    user, password = os.environ.get(auth.username_env), os.environ.get(auth.password_env)
    missing = [name for name, value in ((auth.username_env, user), (auth.password_env, password)) if value is None]
    if missing:
        raise ConnectionLost(endpoint, f"environment variable(s) {', '.join(missing)} not set", retryable=False)
    client.set_user(user or "")
    client.set_password(password or "")


async def _secure(client: Client, endpoint: str, security: OpcUaSecurity, cert_path: Path, key_path: Path) -> None:
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
        raise ConnectionLost(endpoint, _untrusted(fp), retryable=False)
    await client.set_security(policy, str(cert_path), str(key_path), server_certificate=server_der, mode=mode)
