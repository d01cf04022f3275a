"""The actors of rareshock, one module per kind: each holds its state and its decisions.

Agents are Mesa agents; their per-day arithmetic runs over NumPy arrays of the whole population
(see :mod:`model.network`), so each module exposes population-level functions next to its Agent class.
"""

from agents.automaker import AutomakerPlant
from agents.chips import ChineseChipBuyer, ChipFirm, ChipSector
from agents.defense import DefenseProgramme
from agents.government import Government
from agents.industry import IndustrialBuyer
from agents.investment import InvestmentProgramme, Project
from agents.licensing import InteragencyReview, MofcomOffice
from agents.magnet_maker import MagnetMaker
from agents.separator import Separator
from agents.sourcing import Sourcing

__all__ = [
    "AutomakerPlant", "ChineseChipBuyer", "ChipFirm", "ChipSector", "DefenseProgramme", "Government", "IndustrialBuyer",
    "InteragencyReview", "InvestmentProgramme", "MofcomOffice", "MagnetMaker", "Project", "Separator", "Sourcing",
]
