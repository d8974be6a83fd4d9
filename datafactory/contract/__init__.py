"""The data contract: names, topics, quality codes and the batched payload, defined once and versioned.
Core: imports nothing outside ``datafactory``; any service may import it.

See ``docs/contract.md`` and ``datafactory/contract/payload.schema.json``.
"""

from datafactory.contract.names import NAME_PATTERN, validate_name
from datafactory.contract.payload import (
    CONFIG_FORMAT,
    CONTENT_FORMAT,
    MAX_PAYLOAD_BYTES,
    Batch,
    CellMeta,
    SignalMeta,
    decode_batch,
    decode_config,
    decode_meta,
    encode_batch,
    encode_config,
    encode_meta,
)
from datafactory.contract.quality import (
    BAD,
    BAD_COMMUNICATION_ERROR,
    BAD_NO_COMMUNICATION,
    GOOD,
    UNCERTAIN,
    UNCERTAIN_LAST_USABLE_VALUE,
    Severity,
    severity,
)
from datafactory.contract.sample import Sample, datetime_to_us, now_us, us_to_datetime
from datafactory.contract.topics import (
    CONTRACT_VERSION,
    ROOT,
    CellPath,
    TopicKind,
    parse_topic,
)

__all__ = [
    "BAD",
    "BAD_COMMUNICATION_ERROR",
    "BAD_NO_COMMUNICATION",
    "CONFIG_FORMAT",
    "CONTENT_FORMAT",
    "CONTRACT_VERSION",
    "GOOD",
    "MAX_PAYLOAD_BYTES",
    "NAME_PATTERN",
    "ROOT",
    "UNCERTAIN",
    "UNCERTAIN_LAST_USABLE_VALUE",
    "Batch",
    "CellMeta",
    "CellPath",
    "Sample",
    "Severity",
    "SignalMeta",
    "TopicKind",
    "datetime_to_us",
    "decode_batch",
    "decode_config",
    "decode_meta",
    "encode_batch",
    "encode_config",
    "encode_meta",
    "now_us",
    "parse_topic",
    "severity",
    "us_to_datetime",
    "validate_name",
]
