"""Config model of ``kind: opcua``: an OPC-UA server read through subscriptions, its channel security and user
identity, and the nodes (or whole folders, ``opcua_folders``) it subscribes.

Security has no insecure default: a policy must be written, a secure one must say how the server is authenticated,
and a user's password is never sent to an unauthenticated server unless the config accepts that risk in words.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from datafactory.config.base import Name, NodeId, StrictModel
from datafactory.config.opcua_folders import OpcUaFolder
from datafactory.config.signals import EnvVar, SignalBinding, SourceConfig


class SecurityPolicy(StrEnum):
    NONE = "none"
    BASIC256SHA256 = "basic256sha256"
    AES128_SHA256_RSAOAEP = "aes128_sha256_rsaoaep"
    AES256_SHA256_RSAPSS = "aes256_sha256_rsapss"


class SecurityMode(StrEnum):
    NONE = "none"
    SIGN = "sign"
    SIGN_AND_ENCRYPT = "sign_and_encrypt"


class OpcUaSecurity(StrictModel):
    policy: SecurityPolicy = Field(
        description="Security policy. There is no default: 'none' must be written explicitly."
    )
    mode: SecurityMode = Field(description="Message security mode; must be 'none' exactly when policy is 'none'.")
    certificate: str = Field(default="", description="Path of the gateway's application certificate (DER/PEM).")
    private_key: str = Field(default="", description="Path of the certificate's private key (PEM).")
    trusted_server_fingerprints: list[str] = Field(
        default_factory=list, description="SHA-256 fingerprints (hex) of server certificates to trust (pinning)."
    )
    trust_dir: str = Field(default="", description="Directory of trusted server certificates (trust list).")
    send_password_to_unverified_server: bool = Field(
        default=False,
        description="With policy 'none' and a user name, send the password although no pinned server "
        "certificate proves who receives it (an impostor at the address gets it). Off: such a config is refused.",
    )


class AnonymousAuth(StrictModel):
    kind: Literal["anonymous"] = Field(description="No user identity.")


class UsernameAuth(StrictModel):
    kind: Literal["username"] = Field(description="User name and password from environment variables.")
    username_env: EnvVar = Field(description="Environment variable holding the user name.")
    password_env: EnvVar = Field(description="Environment variable holding the password.")


class CertificateAuth(StrictModel):
    kind: Literal["certificate"] = Field(description="X.509 user identity certificate.")
    certificate: str = Field(description="Path of the user certificate.")
    private_key: str = Field(description="Path of the user certificate's private key.")


Auth = Annotated[AnonymousAuth | UsernameAuth | CertificateAuth, Field(discriminator="kind")]


class TimestampSource(StrEnum):
    SOURCE = "source"
    SERVER = "server"


class OpcUaNode(SignalBinding):
    node_id: NodeId = Field(
        description="OPC-UA node id: ns=<index>;s=<name> | ;i=<number> | ;g=<guid> | ;b=<base64>,"
        " e.g. 'ns=2;s=Line1.Press01.Power'.",
        min_length=3,
    )
    sampling_interval_ms: float | None = Field(
        default=None, ge=0, description="Server sampling interval; default is the source's."
    )
    queue_size: int = Field(default=10, ge=1, description="Server-side queue size of the monitored item.")


class OpcUaSource(SourceConfig):
    bindings_key: ClassVar[str] = "nodes"

    kind: Literal["opcua"] = Field(description="Read an OPC-UA server through subscriptions.")
    id: Name = Field(description="Source name, unique in this config.")
    endpoint: str = Field(description="Server endpoint URL, opc.tcp://host:port/path.", pattern=r"^opc\.tcp://.+")
    security: OpcUaSecurity = Field(description="Channel security; required, with no insecure default.")
    auth: Auth = Field(default_factory=lambda: AnonymousAuth(kind="anonymous"), description="User identity.")
    publishing_interval_ms: float = Field(default=1000, gt=0, description="Subscription publishing interval.")
    sampling_interval_ms: float = Field(default=500, ge=0, description="Default sampling interval of items.")
    timestamps: TimestampSource = Field(
        default=TimestampSource.SOURCE, description="Which OPC-UA timestamp becomes the sample time."
    )
    keepalive_timeout_s: float = Field(
        default=10, gt=0, description="No data or keep-alive for this long means the server is stalled."
    )
    nodes: list[OpcUaNode] = Field(default_factory=list, description="Nodes to subscribe and what they mean.")
    folders: list[OpcUaFolder] = Field(
        default_factory=list,
        description="Subscribe every variable under a browse path (resolved at each connect; see docs/gateway.md).",
    )

    def semantic_problems(self) -> list[tuple[str, str]]:
        sec = self.security
        problems = []
        if (sec.policy is SecurityPolicy.NONE) != (sec.mode is SecurityMode.NONE):
            problems.append(("security.mode", f"mode {sec.mode.value!r} does not fit policy {sec.policy.value!r}"))
        if sec.policy is not SecurityPolicy.NONE and not (sec.trusted_server_fingerprints or sec.trust_dir):
            problems.append(
                (
                    "security",
                    "a secure policy needs trusted_server_fingerprints or trust_dir to authenticate the server",
                )
            )
        if (
            sec.policy is SecurityPolicy.NONE
            and isinstance(self.auth, UsernameAuth)
            and not (sec.trusted_server_fingerprints or sec.trust_dir or sec.send_password_to_unverified_server)
        ):
            problems.append(
                (
                    "security",
                    "policy none with a user name would hand the password to whatever answers at the endpoint: "
                    "pin the server certificate (security.trusted_server_fingerprints or trust_dir), use a secure "
                    "policy, or accept the risk with security.send_password_to_unverified_server: true",
                )
            )
        return problems
