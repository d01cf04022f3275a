"""Random draws described by their mean and coefficient of variation (for buffers and lead times)."""

from __future__ import annotations

import math

import numpy as np


def lognormal(rng: np.random.Generator, mean: float, cv: float, size: int | None = None):
    """Lognormal draws with the given mean and coefficient of variation (``mean`` itself if cv is 0)."""
    if cv <= 0:
        return mean if size is None else np.full(size, float(mean))
    s2 = math.log(1 + cv * cv)
    return rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2), size)
