"""The one base for every typed config of rareshock (scenarios, chips, sweeps, comparisons, calibrations),
the field types they share, and the one error type for bad input.

A config is a tree of :class:`Strict` models: unknown keys are errors (with a "did you mean" from
:func:`rareshock.model.config.format_error`), assignments are validated too, and values are never coerced
from another type:

- a number field takes an integer or a float, never ``true``/``false`` (a boolean is not 1 or 0);
- a whole-number field takes an integer only (``5``, not ``5.0`` or ``5.5``);
- a true/false field takes ``true`` or ``false`` only (not 1, 0 or "yes");
- a text field takes text only (``extends = 5`` is an error, not "5");
- a date (:data:`Date`) takes a TOML date or an ISO ``YYYY-MM-DD`` string (as configs are re-read from
  JSON, e.g. a sweep's manifest), never a number (no Unix times) and never a date with a time;
- NaN and infinity are never accepted where a number is meant.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class ConfigError(Exception):
    """A config or override problem; ``str(err)`` is one line for the user."""


class Strict(BaseModel):
    """Base of every config model: no unknown keys, validated assignment, no type coercion, finite numbers."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False, strict=True)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date(value: Any) -> dt.date:
    """A calendar date from a date or an ISO ``YYYY-MM-DD`` string; anything else is an error."""
    if isinstance(value, dt.datetime):
        raise ValueError("expected a date (YYYY-MM-DD), not a date with a time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError("expected a date (YYYY-MM-DD) that exists in the calendar") from None
    raise ValueError("expected a date (YYYY-MM-DD)")


Date = Annotated[dt.date, BeforeValidator(_date)]
NonNeg = Annotated[float, Field(ge=0)]
Pos = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(ge=0, le=1)]
PosShare = Annotated[float, Field(gt=0, le=1)]
Days = Annotated[int, Field(ge=0, le=3650)]
Tonnes = Annotated[float, Field(ge=0, le=1e7)]  # a flow or stock of material, t or t/yr (world: ~3e5)
Vehicles = Annotated[float, Field(ge=0, le=1e9)]  # vehicles per year
