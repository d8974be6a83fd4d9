"""Turn a raw source value into a contract ``Sample``: scaling, booleans, deadband, quality.

``value = raw × scale + offset``; booleans become 0/1. A deadband suppresses a *good* sample whose value moved
less than the band from the last value that was passed on:

* ``absolute`` — the band is in signal units (after scaling);
* ``percent`` — the band is a percentage of the engineering range (OPC-UA ``EURange``) when the source knows it,
  otherwise of the magnitude of the last value passed on (so 1 % of 200 kW is 2 kW).

A change of quality, the first sample and any non-good sample always pass: a gap or a recovery must be visible.
A value that does not fit the signal's declared type (``SignalBinding.declared_type``) becomes a marker sample —
no value, Bad_TypeMismatch — so the problem is visible downstream instead of the whole source failing. Signals
declared int64/uint64, bool or string keep their exact Python value (``contract.values``): a 64-bit counter is
not rounded through a float, a recipe name stays a string; integers scale only by an integral scale and offset
(the config loader refuses anything else for them; a scaled value is otherwise a float64). This runs once per
value on the hot path, so it is plain Python with pre-computed attributes, no pydantic.
"""

from __future__ import annotations

import math

from datafactory.config.models import DeadbandKind, SignalBinding
from datafactory.contract.quality import BAD_TYPE_MISMATCH, Severity, severity
from datafactory.contract.sample import Sample
from datafactory.contract.values import INT64_MAX, INT64_MIN, UINT64_MAX, SignalType


class Normaliser:
    """Per-signal state: scaling, the deadband and the last value passed on."""

    __slots__ = (
        "_band",
        "_identity",
        "_kind",
        "_last_quality",
        "_last_value",
        "_range",
        "_type",
        "cell",
        "eu_span",
        "offset",
        "passthrough",
        "scale",
        "signal",
    )

    def __init__(self, binding: SignalBinding, *, eu_span: float | None = None) -> None:
        self.cell = binding.cell
        self.signal = binding.signal
        self.scale = binding.scale
        self.offset = binding.offset
        self._identity = binding.scale == 1.0 and binding.offset == 0.0
        self._kind = binding.deadband.kind
        self._band = binding.deadband.value
        self.eu_span = eu_span  # high − low of the OPC-UA EURange, in signal units, when the server has one
        self._last_value: float | None = None
        self._last_quality: int | None = None
        declared = binding.declared_type()  # the config loader refuses scaling that would not fit it
        self._type = declared
        self._range = (0, UINT64_MAX) if declared is SignalType.UINT64 else (INT64_MIN, INT64_MAX)
        # A float64 signal, unscaled, no deadband: a finite Good float passes as it is and no state is kept for
        # it (the last value matters only to a deadband), so a hot loop may build the Sample itself.
        self.passthrough = declared is SignalType.FLOAT64 and self._identity and self._kind is DeadbandKind.NONE

    def apply(self, raw: object, time_us: int, quality: int = 0) -> Sample | None:
        """The normalised sample, or None when the deadband suppresses it."""
        if raw is None or (quality and severity(quality) is Severity.BAD):  # quality 0 (Good) is the hot path
            self._last_value = None
            self._last_quality = quality if severity(quality) is Severity.BAD else BAD_TYPE_MISMATCH
            return Sample(self.signal, time_us, math.nan, self._last_quality)
        if self._type is not SignalType.FLOAT64:
            return self._typed(raw, time_us, quality)
        if type(raw) is bool:
            value = float(raw)
        elif isinstance(raw, int | float):
            # Unscaled values pass untouched: -0.0 * 1.0 + 0.0 would be +0.0, a different value bit for bit.
            value = float(raw) if self._identity else float(raw) * self.scale + self.offset
        else:
            self._last_value = None
            self._last_quality = BAD_TYPE_MISMATCH
            return Sample(self.signal, time_us, math.nan, BAD_TYPE_MISMATCH)
        if not math.isfinite(value):
            self._last_value = None
            self._last_quality = BAD_TYPE_MISMATCH
            return Sample(self.signal, time_us, math.nan, BAD_TYPE_MISMATCH)
        if self._suppressed(value, quality):
            return None
        self._last_value = value
        self._last_quality = quality
        return Sample(self.signal, time_us, value, quality)

    def _typed(self, raw: object, time_us: int, quality: int) -> Sample | None:
        """Signals declared int64/uint64/bool/string: the exact value, or a type-mismatch marker."""
        t, declared = type(raw), self._type
        value: int | bool | str
        if (declared is SignalType.BOOL and t is bool) or (declared is SignalType.STRING and t is str):
            value = raw  # type: ignore[assignment]
        elif declared in (SignalType.INT64, SignalType.UINT64) and t is int:
            value = raw * int(self.scale) + int(self.offset)  # type: ignore[operator]
            if not self._range[0] <= value <= self._range[1]:
                return self._mismatch(time_us)
        else:
            return self._mismatch(time_us)
        if type(value) is int and self._suppressed(value, quality):
            return None
        self._last_value = value if type(value) is int else None
        self._last_quality = quality
        return Sample(self.signal, time_us, value, quality)

    def _mismatch(self, time_us: int) -> Sample:
        self._last_value = None
        self._last_quality = BAD_TYPE_MISMATCH
        return Sample(self.signal, time_us, math.nan, BAD_TYPE_MISMATCH)

    def _suppressed(self, value: float, quality: int) -> bool:
        last = self._last_value
        if self._kind is DeadbandKind.NONE or last is None or quality != self._last_quality:
            return False
        if self._kind is DeadbandKind.ABSOLUTE:
            band = self._band
        elif self.eu_span is not None and self.eu_span > 0:
            band = self._band / 100.0 * self.eu_span
        else:
            band = self._band / 100.0 * abs(last)
        return abs(value - last) <= band if band > 0 else False
