"""What every source shares: the signal binding (what a value means) and the source base class.

A source kind is one config model (a subclass of ``SourceConfig`` with a ``kind`` literal) plus one adapter
module ``gateway/sources/<kind>.py``. The model names the list that holds its signal bindings
(``bindings_key``) and may add cross-field rules (``semantic_problems``); the plant config, the loader and the
gateway derive everything else from the ``Source`` union in ``datafactory.config.models``, so adding a kind
is the model, the adapter and one entry in that union.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, ClassVar, get_args

from pydantic import Field

from datafactory.config.base import Name, StrictModel
from datafactory.contract.meanings import Meaning
from datafactory.contract.values import SignalType

ENV_VAR_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
EnvVar = Annotated[str, Field(pattern=ENV_VAR_PATTERN)]


class DeadbandKind(StrEnum):
    NONE = "none"
    ABSOLUTE = "absolute"
    PERCENT = "percent"


class Deadband(StrictModel):
    kind: DeadbandKind = Field(default=DeadbandKind.NONE, description="none, absolute (in signal units) or percent.")
    value: float = Field(default=0.0, ge=0, description="Deadband width (units, or percent of the EU range).")


class SignalBinding(StrictModel):
    """What a source value means once it reaches the platform."""

    cell: str = Field(description="Cell path 'area/line/cell' in this site's asset hierarchy.")
    signal: Name = Field(description="Signal name within the cell (e.g. 'power', 'state', 'good_count').")
    meaning: Meaning = Field(description="What the signal means; analytics select signals by meaning.")
    unit: str = Field(default="", description="Engineering unit after scaling (e.g. 'kW', 'kWh', 'mm/s').")
    scale: float = Field(default=1.0, description="Multiplier applied to the raw value: value = raw*scale+offset.")
    offset: float = Field(default=0.0, description="Offset added after scaling.")
    deadband: Deadband = Field(default_factory=Deadband, description="Suppress changes smaller than this.")
    description: str = Field(default="", description="Free text shown in the signal registry.")
    signal_type: SignalType | None = Field(
        default=None,
        description="Declared value type (float64, int64, uint64, bool, string); ingest checks values against it. "
        "Empty = the source's natural type (float64 unless the source kind derives it, e.g. from a data type).",
    )

    def declared_type(self) -> SignalType:
        """The signal's value type: ``signal_type`` if given, else the source's natural type."""
        return self.signal_type or self.natural_type()

    def natural_type(self) -> SignalType:
        """The type the source's data implies: float64 here; kinds that declare data types (Modbus registers,
        S7 addresses) derive it from theirs. An integer scaled by a fraction is a float64."""
        return SignalType.FLOAT64

    def is_scaled(self) -> bool:
        return self.scale != 1.0 or self.offset != 0.0

    def scales_to_integers(self) -> bool:
        """Whether scale and offset map integers to integers (×10 Wh → kWh does not; ×10 does)."""
        return float(self.scale).is_integer() and float(self.offset).is_integer()


class SourceConfig(StrictModel):
    """Base of every source model. Subclasses declare ``kind: Literal[...]``, ``id`` and their binding list."""

    bindings_key: ClassVar[str]
    """Name of the field holding this kind's signal bindings (``nodes``, ``mappings``, ``registers``, …)."""

    if TYPE_CHECKING:  # declared by every subclass as a field (after ``kind``, so the reference reads in order)
        id: str
        kind: str

    @classmethod
    def kind_name(cls) -> str:
        """The ``kind`` literal of this model (its tag in the ``Source`` union and its adapter module name)."""
        (tag,) = get_args(cls.model_fields["kind"].annotation)
        return str(tag)

    def signal_bindings(self) -> list[SignalBinding]:
        """Every signal this source delivers, in config order."""
        return list(getattr(self, self.bindings_key))

    def semantic_problems(self) -> list[tuple[str, str]]:
        """Cross-field rules of this kind, as (key path relative to the source, message)."""
        return []
