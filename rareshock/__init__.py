"""rareshock: an agent-based model of the 2025 US-China standoff over rare earths, magnets and chips.

One import name for the whole project: ``rareshock.model`` (the world and its rules, folder ``model/``),
``rareshock.agents`` (one module per population of actors, folder ``agents/``), and the machinery here:
running scenarios, sweeps, reproduction, outputs and the command line.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rareshock")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0+unknown"
