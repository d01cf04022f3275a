"""The actors of rareshock, one module per kind: each holds its state and its decisions.

Agents are Mesa agents; their per-day arithmetic runs over NumPy arrays of the whole population
(see :mod:`model.network`), so each module exposes population-level functions next to its Agent class.
"""

from rareshock.agents.automaker import AutomakerPlant
from rareshock.agents.chips import ChineseChipBuyer, ChipFirm, ChipSector
from rareshock.agents.defense import DefenseProgramme
from rareshock.agents.government import Government
from rareshock.agents.industry import IndustrialBuyer
from rareshock.agents.investment import InvestmentProgramme, Project
from rareshock.agents.licensing import InteragencyReview, MofcomOffice
from rareshock.agents.magnet_maker import MagnetMaker
from rareshock.agents.separator import Separator
from rareshock.agents.sourcing import Sourcing

__all__ = [
    "AutomakerPlant", "ChineseChipBuyer", "ChipFirm", "ChipSector", "DefenseProgramme", "Government", "IndustrialBuyer",
    "InteragencyReview", "InvestmentProgramme", "MofcomOffice", "MagnetMaker", "Project", "Separator", "Sourcing",
]
