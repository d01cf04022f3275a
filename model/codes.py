"""The model's vocabulary, defined once: regions, materials, what can be controlled, node kinds, end uses
and the stages of the mine-to-magnet chain.

Indices are what the arrays use (``stock[node, Material.NDFEB]``); names are what configs, records and
figures use (``REGIONS[i]``, ``MATERIALS[m]``).
"""

from __future__ import annotations

import tomllib
from enum import IntEnum
from pathlib import Path

REGIONS = ("CN", "US", "JP", "EU", "IN", "ROW")
EX_CN_REGIONS = REGIONS[1:]
MATERIALS = ("ndpr_oxide", "dytb_oxide", "sm_oxide", "ndfeb", "smco")
# What an export-control event can cover: oxides/metals by element group, loose magnets by grade, the
# extraterritorial rule on foreign-made magnets with Chinese content, and magnets that leave China inside
# China-made parts (motors, rotors, actuators; not covered by Announcement No. 18).
CONTROLLABLE = (
    "dytb_oxide",
    "sm_oxide",
    "ndpr_oxide",
    "ndfeb_heavy",
    "ndfeb_light",
    "smco",
    "foreign_magnets_cn_content",
    "ndfeb_in_parts",
)
# Elements and products named in China's announcements -> the items above they touch (data, with sources:
# model/controlled_elements.toml). An empty list: the modelled chain has no node for it.
CONTROLLED_ELEMENTS: dict[str, dict] = tomllib.loads(
    (Path(__file__).parent / "controlled_elements.toml").read_text(encoding="utf-8")
)
for _name, _row in CONTROLLED_ELEMENTS.items():
    _bad = [i for i in _row["items"] if i not in CONTROLLABLE]
    if _bad or not _row.get("source"):
        raise ValueError(f"controlled_elements.toml [{_name}]: unknown item {_bad} or no source")
STAGES = ("mining", "separation", "metal", "magnets", "recycling")


class Material(IntEnum):
    """Columns of the per-node material arrays (order of :data:`MATERIALS`)."""

    NDPR = 0
    DYTB = 1
    SM = 2
    NDFEB = 3
    SMCO = 4


class Item(IntEnum):
    """What a supply relationship carries, as export controls see it (order of :data:`CONTROLLABLE`)."""

    DYTB = 0
    SM = 1
    NDPR = 2
    NDFEB_HEAVY = 3
    NDFEB_LIGHT = 4
    SMCO = 5
    FOREIGN_CN_CONTENT = 6
    NDFEB_IN_PARTS = 7


class Kind(IntEnum):
    """What a node of the supply network is."""

    SEPARATOR = 0
    MAKER = 1
    PLANT = 2
    DEFENSE = 3
    INDUSTRY = 4


class EndUse(IntEnum):
    """Licensing and approval statistics group buyers by end use."""

    AUTO = 0
    INDUSTRIAL = 1
    DEFENSE = 2
    PRODUCER = 3


CN = REGIONS.index("CN")
