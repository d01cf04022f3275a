"""rareshock: an agent-based model of the 2025 US-China standoff over rare earths, magnets and chips.

One import name for the whole project: ``rareshock.model`` (the world and its rules, folder ``model/``),
``rareshock.agents`` (one module per population of actors, folder ``agents/``), ``rareshock.experiments``
(the shipped scenarios, sweeps, comparisons and calibrations, folder ``experiments/``), and the machinery
here: running scenarios, sweeps, reproduction, outputs and the command line.

``rareshock.run("april_2025_shock", seed=1, licensing__cn__reviewers=40)`` runs a scenario from Python
(:mod:`rareshock.api`). Importing ``rareshock`` is light: the model and its dependencies load on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rareshock.api import Result

try:
    __version__ = version("rareshock")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0+unknown"

__all__ = ["Result", "__version__", "run"]


def run(scenario: Any, seed: int | None = None, **kwargs: Any) -> Result:
    """Run a scenario by name or path and return a :class:`rareshock.api.Result` (``summary``,
    ``timeseries``, ``config``, ``plot()``); see :func:`rareshock.api.run` for overrides and posteriors."""
    from rareshock.api import run as _run

    return _run(scenario, seed, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Result":
        from rareshock.api import Result

        return Result
    raise AttributeError(f"module 'rareshock' has no attribute {name!r}")
