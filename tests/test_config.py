"""Bad configs are rejected with one line naming the field and what is allowed; never a traceback."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rareshock.model.config import ConfigError, defaults, load_scenario, validate
from tests.conftest import SHOCK

GOOD = SHOCK.read_text()
N_EVENTS = GOOD.count("[[events]]")  # index of an event appended to the shock scenario


def _error(tmp_path, text: str, overrides=()) -> str:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_scenario(p, list(overrides))
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


@pytest.mark.parametrize(
    "text, overrides, expected",
    [
        ("[scenario]\nname='x'\nstart=2025-01-01\n", (), "scenario.end: required"),
        ("[scenario]\nname='x'\nstart=2025-01-01\nend=2024-01-01\n", (), "end must not be before start"),
        ("[scenario]\nname='x'\nstart=2025-01-01\nend=2025-13-01\n", (), "invalid TOML"),
        ("[scenario]\nname='x y'\nstart=2025-01-01\nend=2025-02-01\n", (), "scenario.name"),
        (GOOD, ("licensing.cn.reviewrs=3",), "did you mean 'reviewers'"),
        (GOOD, ("licensing.cn.reviewers=abc",), "licensing.cn.reviewers"),
        (GOOD, ("licensing.cn.reviewers=0",), "greater than or equal to 1"),
        (GOOD, ("licensing.cn.p_incomplete=1.5",), "licensing.cn.p_incomplete"),
        (GOOD, ("shipping.sea_days={US=3}",), "missing region 'JP'"),
        (GOOD, ("other_demand.export_share.US=0.5",), "must sum to 1"),
        (GOOD, ("automakers.US.bev_share=0.9",), "bev_share + hev_share"),
        (GOOD, ("licensing.cn.reviewers",), "expected path=value"),
        (GOOD + "\n[[events]]\ndate=2025-12-01\nkind='cn_teleport'\n", (), f"events[{N_EVENTS}]"),
        (GOOD + "\n[[events]]\ndate=2025-01-01\nkind='marker'\nlabel='early'\n", (), "date order"),
        (
            GOOD + "\n[[events]]\ndate=2025-12-01\nkind='us_chip_licences_granted'\nfirms=['intel']\n",
            (),
            "unknown firm 'intel'",
        ),
        (
            GOOD + "\n[[events]]\ndate=2025-12-01\nkind='cn_export_controls'\nitems=['gold']\n",
            (),
            f"events[{N_EVENTS}].items[0]",
        ),
        ("[senario]\nname='x'\n", (), "missing [scenario]"),
        (GOOD.replace("[scenario]", "[scenario]\nseeed = 3"), (), "did you mean 'seed'"),
    ],
)
def test_malformed_configs_give_one_line(tmp_path, text, overrides, expected):
    assert expected in _error(tmp_path, text, overrides)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_scenario(tmp_path / "nope.toml")


def test_overrides_merge_into_defaults():
    cfg = load_scenario(SHOCK, ["automakers.US.buffer_days_mean=30", "licensing.cn.reviewers=99"])
    assert cfg.automakers.US.buffer_days_mean == 30
    assert cfg.automakers.US.plants == 40  # the rest of the table keeps its defaults
    assert cfg.licensing.cn.reviewers == 99


FIELDS = [
    "licensing.cn.reviewers",
    "licensing.cn.p_incomplete",
    "automakers.US.buffer_days_mean",
    "shipping.air_days",
    "prices.elasticity_dy",
    "defense.US.magnets_t_per_year",
    "scenario.seed",
    "automakers.EU.plants",
    "magnet_makers.dytb_per_t_ndfeb",
]
VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(field=st.sampled_from(FIELDS), value=VALUES)
def test_random_values_are_accepted_or_rejected_cleanly(field, value):
    """Whatever is thrown at a field, the schema either accepts it or raises a one-line ConfigError."""
    data = defaults()
    data["scenario"] = {"name": "h", "start": "2025-01-01", "end": "2025-02-01"}
    node = data
    *head, last = field.split(".")
    for k in head:
        node = node[k]
    node[last] = value
    try:
        cfg = validate(data)
    except ConfigError as err:
        assert "\n" not in str(err) and field.split(".")[-1] in str(err)
    else:
        assert cfg is not None
