"""Shared pydantic base and field types for every config model."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

from datafactory.contract.names import NAME_PATTERN, validate_name
from datafactory.settings import MQTT_SCHEMES


class StrictModel(BaseModel):
    """Unknown keys are an error (a typo must not be silently ignored); models are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


Name = Annotated[str, AfterValidator(validate_name)]
NAME_JSON_PATTERN = NAME_PATTERN


# OPC-UA node ids as integrators write them (OPC 10000-6 §5.3.1.10): an optional namespace (ns=<index> or
# nsu=<uri>) and one identifier: i=<UInt32>, s=<string>, g=<GUID>, b=<ByteString, base64>.
_NODE_ID = re.compile(
    r"^(?:(?:ns=(?P<ns>\d+)|nsu=(?P<nsu>[^;]+));)?"
    r"(?:i=(?P<i>\d+)|s=(?P<s>.+)|g=(?P<g>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})"
    r"|b=(?P<b>[A-Za-z0-9+/]+={0,2}))$",
    re.DOTALL,
)


def check_node_id(text: str) -> str:
    m = _NODE_ID.match(text)
    if m is None:
        hint = " (the separator is ';', not ',')" if re.match(r"^ns=\d+,", text) else ""
        raise ValueError(
            f"{text!r} is not an OPC-UA node id{hint}: write ns=<index>;s=<name>, ns=<index>;i=<number>, "
            "ns=<index>;g=<guid> or ns=<index>;b=<base64>"
        )
    if m.group("ns") is not None and int(m.group("ns")) > 0xFFFF:
        raise ValueError(f"{text!r}: namespace index {m.group('ns')} is over 65535")
    if m.group("i") is not None and int(m.group("i")) > 0xFFFFFFFF:
        raise ValueError(f"{text!r}: numeric identifier {m.group('i')} is over 4294967295 (UInt32)")
    return text


def check_broker_url(url: str) -> str:
    """Empty (the platform broker) or mqtt[s]://host[:port], never with credentials in it."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme not in MQTT_SCHEMES or not parts.hostname:
        raise ValueError("not a broker URL: write mqtt://host:port (or mqtts://host:port for TLS)")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "credentials do not belong in the URL (a config is deployed and shown): name environment variables "
            "in username_env and password_env instead"
        )
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError as err:
        raise ValueError(f"bad port in broker URL: {err}") from None
    return url


NodeId = Annotated[str, AfterValidator(check_node_id)]
BrokerUrl = Annotated[str, AfterValidator(check_broker_url)]
