"""The actors of rareshock, one module per kind: each holds its state and its decisions.

Agents are Mesa agents; their per-day arithmetic runs over NumPy arrays of the whole population
(see :mod:`model.network`), so each module exposes population-level functions next to its Agent class.
"""

from agents.automaker import AutomakerPlant
from agents.chips import ChineseChipBuyer, ChipFirm
from agents.defense import DefenseProgramme
from agents.government import Government
from agents.industry import IndustrialBuyer
from agents.licensing import InteragencyReview, MofcomOffice
from agents.magnet_maker import MagnetMaker
from agents.separator import Separator

__all__ = [
    "AutomakerPlant", "ChineseChipBuyer", "ChipFirm", "DefenseProgramme", "Government", "IndustrialBuyer",
    "InteragencyReview", "MofcomOffice", "MagnetMaker", "Separator",
]
