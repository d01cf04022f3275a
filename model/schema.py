"""The one base for every typed config of rareshock (scenarios, chips, sweeps, comparisons, calibrations),
the field types they share, and the one error type for bad input.

A config is a tree of :class:`Strict` models: unknown keys are errors (with a "did you mean" from
:func:`rareshock.model.config.format_error`), assignments are validated too, and NaN or infinity is never
accepted where a number is meant.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ConfigError(Exception):
    """A config or override problem; ``str(err)`` is one line for the user."""


class Strict(BaseModel):
    """Base of every config model: no unknown keys, validated assignment, finite numbers only."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


NonNeg = Annotated[float, Field(ge=0)]
Pos = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(ge=0, le=1)]
PosShare = Annotated[float, Field(gt=0, le=1)]
Days = Annotated[int, Field(ge=0, le=3650)]
