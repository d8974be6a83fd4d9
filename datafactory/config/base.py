"""Shared pydantic base and field types for every config model."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from datafactory.contract.names import NAME_PATTERN, validate_name


class StrictModel(BaseModel):
    """Unknown keys are an error (a typo must not be silently ignored); models are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


Name = Annotated[str, AfterValidator(validate_name)]
NAME_JSON_PATTERN = NAME_PATTERN
