"""Event kinds of the 2025-2026 record: controls by destination, element lists as data, general licences,
suspensions that lapse on a date, technology controls, China's import-side chip bans, stockpile
programmes, production quotas and state stockpiling. Each acts through its population's policy method;
behaviour is checked on tiny worlds and, where it depends on chance, over several seeds.

Day d is ``2025-01-01 + d``.
"""

from __future__ import annotations

import numpy as np
import pytest

from rareshock.model.codes import REGIONS, Item
from rareshock.model.config import ConfigError
from tests.popworld import tiny_config, tiny_model
from tests.test_government import ev, run

JP = REGIONS.index("JP")
SEEDS = (0, 1, 2, 3, 4)


def step(model) -> None:
    for _ in range(model.n_days):
        model.step()


def _bad(events) -> str:
    with pytest.raises(ConfigError) as err:
        tiny_config(events=events)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------- by destination
def test_controls_for_one_destination_need_licences_to_it_only():
    model = tiny_model(events=[ev("cn_export_controls", 1, items=["ndfeb_heavy", "dytb_oxide"], destinations=["JP"])])
    net, lic = model.net, model.licensing
    run(model, 2)
    items = np.isin(net.item, [Item.NDFEB_HEAVY, Item.DYTB]) & net.cn_export
    assert (items & (net.dest == JP)).any() and (items & (net.dest != JP)).any()
    np.testing.assert_array_equal(net.controlled, items & (net.dest == JP))
    assert lic.controlled_to("ndfeb_heavy") == ["JP"] and lic.controlled_items() == ["dytb_oxide", "ndfeb_heavy"]
    # customs friction on loose Dy/Tb-free NdFeB follows the heavy-grade control's destinations
    light = net.cn_export & (net.item == Item.NDFEB_LIGHT)
    assert (net.extra_lead[light & (net.dest == JP)] == 3).all()
    assert (net.extra_lead[light & (net.dest != JP)] == 0).all()


def test_lifting_for_one_destination_keeps_the_others():
    events = [
        ev("cn_export_controls", 1, items=["ndfeb_heavy"]),
        ev("cn_lift_controls", 3, items=["ndfeb_heavy"], destinations=["US", "EU"]),
    ]
    model = tiny_model(events=events)
    net, lic = model.net, model.licensing
    run(model, 4)
    heavy = net.cn_export & (net.item == Item.NDFEB_HEAVY)
    us_eu = np.isin(net.dest, [REGIONS.index("US"), REGIONS.index("EU")])
    np.testing.assert_array_equal(net.controlled, heavy & ~us_eu)
    assert lic.controlled_to("ndfeb_heavy") == ["CN", "JP", "IN", "ROW"]


def test_default_destinations_are_every_destination():
    a = tiny_model(events=[ev("cn_export_controls", 1, items=["smco", "foreign_magnets_cn_content"])])
    b = tiny_model(
        events=[
            ev("cn_export_controls", 1, items=["smco", "foreign_magnets_cn_content"], destinations=list(REGIONS[1:]))
        ]
    )
    run(a, 2)
    run(b, 2)
    np.testing.assert_array_equal(a.net.controlled, b.net.controlled)
    assert a.licensing.controls.all(axis=1).sum() == 2  # every column, China's too (extraterritorial rule)


@pytest.mark.parametrize("seed", SEEDS)
def test_only_shipments_to_the_controlled_destination_are_applied_for(seed):
    model = tiny_model(
        seed=seed, end="2025-04-30", events=[ev("cn_export_controls", 5, items=["ndfeb_heavy"], destinations=["JP"])]
    )
    step(model)
    lic, net = model.licensing, model.net
    assert lic.counts.submitted > 0
    first = lic.first_approval  # day of the first approval by destination x end use (-1: none)
    assert (first[np.arange(len(REGIONS)) != JP] < 0).all() and (first[JP] >= 0).any()
    c = lic.counts
    assert c.submitted == c.approved + c.denied + c.returned + lic.pending
    assert not net.controlled[net.dest != JP].any()


def test_bad_destination_is_one_line_naming_the_field_and_allowed_values():
    msg = _bad([ev("cn_export_controls", 1, items=["smco"], destinations=["KR"])])
    assert "events[0].destinations[0]" in msg and "'JP'" in msg and "KR" in msg
