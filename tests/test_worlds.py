"""Worlds as dated data sets (model/worlds/*.toml), the 2010 world, and the export quota and customs hold.

- the 2024 world file and the config defaults never disagree (one definition of each number), and both
  worlds set the same fields;
- the 2010 world builds without non-Chinese separators, matches the sourced 2010 sizes it was built from, and
  stands still without a shock (over seeds);
- in japan_2010 material is conserved every day, nothing goes negative, licences add up (over seeds);
- a customs hold stops the held items to the held destinations, and only on its dates; a quota keeps the
  bound exports within the allowance accrued, every day (over seeds);
- bad world or event data and an unknown world end with one line and exit code 2.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from rareshock.cli import main
from rareshock.model.codes import CN, CONTROLLABLE, MATERIALS, REGIONS, Kind, Material
from rareshock.model.config import WORLDS_DIR, ConfigError, available_worlds, defaults, load_scenario, read_world
from rareshock.model.model import RareShockModel
from rareshock.simulation import run_scenario

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "experiments" / "scenarios"
JAPAN = SCEN / "japan_2010.toml"
BASE2010 = SCEN / "baseline_2010.toml"
SEEDS = (1, 2, 3)
OXIDES = [CONTROLLABLE.index(i) for i in ("ndpr_oxide", "dytb_oxide", "sm_oxide")]
ND = int(Material.NDFEB)


def _leaves(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_leaves(v, path))
        else:
            out[path] = v
    return out


# ------------------------------------------------------------------ the world files
def test_the_2024_world_file_equals_the_config_defaults():
    world = _leaves(tomllib.loads((WORLDS_DIR / "2024.toml").read_text()))
    world = {k: v for k, v in world.items() if not k.startswith("world.")}
    base = _leaves(defaults())
    assert len(world) > 80
    differ = {k: (v, base.get(k, "<absent>")) for k, v in world.items() if base.get(k, "<absent>") != v}
    assert not differ, f"worlds/2024.toml disagrees with model/config.py: {differ}"


def test_both_worlds_set_the_same_fields():
    keys = {}
    for name in ("2024", "2010"):
        keys[name] = set(_leaves(tomllib.loads((WORLDS_DIR / f"{name}.toml").read_text()))) - {
            "world.year",
            "world.description",
        }
    only_2010 = keys["2010"] - keys["2024"]
    # 2024 leaves China's NdPr start price unset (one price on both sides of the border)
    assert only_2010 == {"prices.ndpr_oxide_cn_usd_kg"}, only_2010
    assert not keys["2024"] - keys["2010"], keys["2024"] - keys["2010"]


def test_every_source_the_world_files_cite_is_in_the_bibliography():
    sources = (ROOT / "docs" / "sources.md").read_text()
    defined = set(re.findall(r"^- \*\*\[([a-z0-9-]+)\]\*\*", sources, re.M))
    for path in WORLDS_DIR.glob("*.toml"):
        cited = set(re.findall(r"\[([a-z][a-z0-9]*(?:-[a-z0-9]+)+)\]", path.read_text()))
        assert not cited - defined, f"{path.name}: {sorted(cited - defined)} not in docs/sources.md"


def test_the_world_is_the_default_2024_and_scenario_tables_override_it(tmp_path):
    text = BASE2010.read_text()
    plain = load_scenario(SCEN / "baseline_2024.toml")
    named = tmp_path / "named.toml"
    named.write_text((SCEN / "baseline_2024.toml").read_text().replace("[scenario]", '[scenario]\nworld = "2024"'))
    assert load_scenario(named).model_dump(exclude={"scenario"}) == plain.model_dump(exclude={"scenario"})
    w10 = load_scenario(BASE2010)
    assert w10.prices.ndpr_oxide_usd_kg == 27.20 and w10.separators.ex_cn_ndpr_t_per_year == {"ROW": 0.0, "US": 0.0}
    over = tmp_path / "over.toml"
    over.write_text(text + "\n[prices]\nndpr_oxide_usd_kg = 30.0\n")
    cfg = load_scenario(over)
    assert cfg.prices.ndpr_oxide_usd_kg == 30.0 and cfg.prices.dy_oxide_ex_cn_usd_kg == 156.5
    assert load_scenario(BASE2010, ["scenario.world=2024"]).prices.ndpr_oxide_usd_kg == 51.0


# ------------------------------------------------------------------ errors: one line, exit 2
def _run_cli(tmp_path, capsys, text: str, *extra: str) -> str:
    cfg = tmp_path / "s.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and not out.exists()
    return err


HEAD = '[scenario]\nname = "t"\nworld = "2010"\nstart = 2010-01-01\nend = 2010-03-31\n'


def test_an_unknown_world_exits_2_listing_the_available_ones(tmp_path, capsys):
    err = _run_cli(tmp_path, capsys, HEAD.replace('"2010"', '"1999"'))
    assert "scenario.world: unknown world '1999'; available: 2010, 2024" in err
    assert available_worlds() == ["2010", "2024"]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            'kind = "cn_customs_hold"\ndestinations = ["CN"]\nitems = ["ndpr_oxide"]\nuntil = 2010-03-01',
            "events[0].destinations[0]: Input should be 'US', 'JP', 'EU', 'IN' or 'ROW' (got 'CN')",
        ),
        (
            'kind = "cn_customs_hold"\ndestinations = ["JP"]\nitems = ["ndpr_oxide"]\nuntil = 2010-01-15',
            "events[0].until: must be after the event's date 2010-02-01 (got 2010-01-15)",
        ),
        (
            'kind = "cn_export_quota"\ntonnes = 100.0\nuntil = 2010-06-30',
            "events[0].reference_tonnes: required field is missing",
        ),
        (
            'kind = "cn_export_quota"\ntonnes = 100.0\nuntil = 2010-06-30\nreference_tonnes = 500.0\n'
            'items = ["ndfeb_heavy"]',
            "events[0].items[0]: Input should be 'ndpr_oxide', 'dytb_oxide' or 'sm_oxide' (got 'ndfeb_heavy')",
        ),
        (
            'kind = "cn_export_quota"\ntonnes = -5.0\nuntil = 2010-06-30\nreference_tonnes = 500.0',
            "events[0].tonnes: Input should be greater than or equal to 0 (got -5.0)",
        ),
    ],
)
def test_bad_event_data_exits_2_with_one_line(tmp_path, capsys, event, expected):
    err = _run_cli(tmp_path, capsys, HEAD + "\n[[events]]\ndate = 2010-02-01\n" + event + "\n")
    assert expected in err, err


def test_bad_world_data_is_one_line_naming_the_world_and_field(tmp_path, monkeypatch):
    import rareshock.model.config as config

    (tmp_path / "1990.toml").write_text('[world]\nyear = 1990\n[prices]\nndpr_oxide_usd_kg = "cheap"\n')
    (tmp_path / "1991.toml").write_text("[events]\nx = 1\n")
    (tmp_path / "1992.toml").write_text("[magnet_makers]\nndfeb_capacity_t_per_year = { CN = 5.0 }\n")
    monkeypatch.setattr(config, "WORLDS_DIR", tmp_path)
    with pytest.raises(ConfigError) as e:
        read_world("1990")
    assert str(e.value) == "world 1990 (1990.toml): prices.ndpr_oxide_usd_kg: expected a number (got 'cheap')"
    with pytest.raises(ConfigError) as e:
        read_world("1991")
    assert str(e.value).startswith("world 1991 (1991.toml): events: not a world section; allowed: automakers,")
    with pytest.raises(ConfigError) as e:
        read_world("1992")
    assert "magnet_makers.ndfeb_capacity_t_per_year: unknown region 'CN'; allowed: US, JP, EU, IN, ROW" in str(e.value)


# ------------------------------------------------------------------ the 2010 world
@pytest.mark.parametrize("seed", SEEDS)
def test_the_2010_world_builds_without_separation_outside_china_and_matches_its_sources(seed):
    model = RareShockModel(load_scenario(BASE2010, ["scenario.end=2010-01-31"]), rng=seed)
    net = model.net
    x_sep = (net.kind == Kind.SEPARATOR) & (net.region != CN)
    assert x_sep.any() and net.cap[x_sep].sum() == 0.0  # sites only: no non-Chinese separation capacity
    yr = 365.0
    makers = net.kind == Kind.MAKER
    load = {r: net.prod_rate[makers & (net.region == REGIONS.index(r)), ND].sum() * yr for r in ("CN", "JP", "EU")}
    # sintered NdFeB 2010: 98,200 t, Japan 19.3% and Europe 1.3% [chinaorg-2013]; China 78,000 + 4,000 bonded
    assert load["JP"] + load["EU"] == pytest.approx(98_200 * (0.193 + 0.013), rel=0.01)
    assert load["CN"] == pytest.approx(82_000, rel=0.01)
    rate = net.rate()
    mag = net.cn_export & ((net.mat == ND) | (net.mat == int(Material.SMCO)))
    assert rate[mag].sum() * yr == pytest.approx(13_886, rel=0.01)  # China's 2010 magnet exports [ccr-2011]
    # every non-Chinese maker's oxide comes from China
    x_in = net.buy[(net.mat <= 2) & (net.share > 0)]
    assert (net.region[net.sup[(net.mat <= 2) & (net.share > 0)]][net.region[x_in] != CN] == CN).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_the_2010_world_stands_still_without_a_shock(seed):
    r = run_scenario(load_scenario(BASE2010, ["scenario.end=2010-06-30"]), seed)
    ts = r.timeseries
    prices = [c for c in ts.columns if c.startswith("price_")]
    first = ts[prices].iloc[0]
    assert ((ts[prices] - first).abs() <= 1e-6 * first).all().all()
    assert (ts[[c for c in ts.columns if c.startswith("auto_plants_idle_")]] == 0).all().all()
    assert r.summary["price_guard_days"] == 0
    assert "cn_quota_bank_t" not in ts.columns  # no limits, no limit columns


# ------------------------------------------------------------------ japan_2010: invariants over seeds
@pytest.fixture(scope="module", params=SEEDS)
def japan_stepped(request):
    """japan_2010 to mid-2011, stepped day by day, recording the checks' inputs."""
    cfg = load_scenario(JAPAN, ["scenario.end=2011-03-31"])
    model = RareShockModel(cfg, rng=request.param)
    net = model.net
    jp = net.cn_export & np.isin(net.item, OXIDES) & (net.dest == REGIONS.index("JP"))
    us_eu = net.cn_export & np.isin(net.item, OXIDES) & np.isin(net.dest, [REGIONS.index("US"), REGIONS.index("EU")])
    other = net.cn_export & ~jp & ~us_eu
    rec = {"jp": [], "us_eu": [], "other": [], "bound": [], "accrued": [], "negative": 0.0, "year": []}
    for _ in range(model.n_days):
        model.step()
        ship = model.producers.ship_today
        rec["jp"].append(ship[jp].sum())
        rec["us_eu"].append(ship[us_eu].sum())
        rec["other"].append(ship[other].sum())
        lim = model.exports
        rec["bound"].append(ship[lim.bound].sum())
        rec["accrued"].append(lim.accrual if model.day - 1 <= lim.accrue_until else 0.0)
        rec["year"].append(model.calendar.date(model.day - 1).year)
        for a in (net.stock, net.transit, net.backlog, net.pipe):
            rec["negative"] = min(rec["negative"], float(a.min()))
    rec = {k: np.asarray(v) if isinstance(v, list) else v for k, v in rec.items()}
    return model, rec


def _day(model, date: str) -> int:
    import datetime as dt

    return (dt.date.fromisoformat(date) - model.calendar.start).days


def test_japan_2010_conserves_material_and_nothing_goes_negative(japan_stepped):
    model, rec = japan_stepped
    assert rec["negative"] >= -1e-9
    ts = model.records.frame(model.calendar.start)
    for m in MATERIALS:
        held = ts[f"stock_{m}_t"] + ts[f"transit_{m}_t"]
        flow = (ts[f"produced_{m}_t"] - ts[f"consumed_{m}_t"]).cumsum()
        residual = (held - (held.iloc[0] - flow.iloc[0]) - flow).abs()
        assert residual.max() <= 1e-9 * max(held.max(), 1.0), (m, residual.max())
    np.testing.assert_allclose(model.net.pipe.sum(axis=0), model.net.transit, rtol=1e-9, atol=1e-9)
    c = ts["cn_licences_submitted_cum"]
    rhs = ts["cn_licences_approved_cum"] + ts["cn_licences_denied_cum"]
    assert (c == rhs + ts["cn_licences_pending"] + ts["cn_licences_returned_cum"]).all()


def test_the_halt_stops_oxides_to_japan_only_and_only_on_its_dates(japan_stepped):
    model, rec = japan_stepped
    start, end = _day(model, "2010-09-21"), _day(model, "2010-11-19")
    jp = rec["jp"]
    assert (jp[start:end] == 0.0).all()  # held, every day of the halt
    assert (jp[start - 30 : start] > 0).all()  # shipping right up to it
    assert jp[end] > 0 and (jp[end : end + 30] > 0).all()  # and from the day it ends
    assert jp[end] > 3 * jp[start - 1]  # the backlog leaves first
    # other destinations keep receiving oxides (US and EU: except their own 18-28 October hold)
    ue0, ue1 = _day(model, "2010-10-18"), _day(model, "2010-10-28")
    assert (rec["us_eu"][ue0:ue1] == 0.0).all()
    assert (rec["us_eu"][start:ue0] > 0).all() and (rec["us_eu"][ue1:end] > 0).all()
    # magnets and every other Chinese export relationship keep shipping through the halt
    assert (rec["other"][start:end] > 0).all()
    held = model.records.frame(model.calendar.start)["cn_held_relationships"].to_numpy()
    assert (held[:start] == 0).all() and (held[start:end] > 0).all() and (held[end:] == 0).all()


def test_a_hold_changes_nothing_before_its_date():
    """Same seed, with and without the halt: identical until the halt's first day."""
    days = _day(RareShockModel(load_scenario(JAPAN, ["scenario.end=2010-01-02"]), rng=1), "2010-09-21")
    runs = []
    for drop in (False, True):
        cfg = load_scenario(JAPAN, ["scenario.end=2010-10-31"])
        if drop:
            cfg = cfg.model_copy(update={"events": [e for e in cfg.events if e.kind != "cn_customs_hold"]})
        runs.append(run_scenario(cfg, 5).timeseries.drop(columns=["cn_held_relationships"]))
    a, b = runs
    assert a.iloc[:days].equals(b.iloc[:days])
    assert not a.iloc[days:].equals(b.iloc[days:])


def test_the_quota_keeps_bound_exports_within_the_allowance_every_day(japan_stepped):
    model, rec = japan_stepped
    for year in (2010, 2011):
        sel = rec["year"] == year
        shipped = np.cumsum(rec["bound"][sel])
        allowed = np.cumsum(rec["accrued"][sel])
        assert (shipped <= allowed * (1 + 1e-12) + 1e-9).all()
    # the year's allowance is the baseline exports times the year's batches over their reference
    lim = model.exports
    base = lim.base_rate[lim.bound].sum() * 365
    sel = rec["year"] == 2010
    quotas = [e for e in model.cfg.events if e.kind == "cn_export_quota" and e.date.year == 2010]
    share = sum(e.tonnes / e.reference_tonnes for e in quotas)
    assert len(quotas) == 2 and 0 < share < 1
    assert rec["accrued"][sel].sum() == pytest.approx(base * share, rel=1e-9)
    # and it binds: Japanese makers want more than it allows, so nearly all of it is used
    assert rec["bound"][sel].sum() >= 0.9 * rec["accrued"][sel].sum()
    assert rec["bound"][sel].sum() <= share * base * (1 + 1e-12)


def test_a_quota_batch_accrues_its_share_of_the_baseline_over_its_period():
    """a = baseline x tonnes / reference_tonnes x 365 / period: the allowance scales with the batch and
    inversely with the reference, whatever the scenario file says."""
    cfg = load_scenario(JAPAN, ["scenario.end=2010-01-05"])
    first = min((e for e in cfg.events if e.kind == "cn_export_quota"), key=lambda e: e.date)
    i = cfg.events.index(first)
    period = (first.until - first.date).days + 1
    accrual = {}
    for name, sets in {
        "file": [],
        "reference x2": [f"events.{i}.reference_tonnes={2 * first.reference_tonnes}"],
        "batch x3": [f"events.{i}.tonnes={3 * first.tonnes}"],
    }.items():
        model = RareShockModel(load_scenario(JAPAN, ["scenario.end=2010-01-05", *sets]), rng=1)
        model.step()
        lim = model.exports
        base = float(lim.base_rate[lim.bound].sum())
        ev = model.cfg.events[i]
        assert lim.accrual == pytest.approx(base * ev.tonnes / ev.reference_tonnes * 365 / period, rel=1e-12)
        accrual[name] = lim.accrual
    assert accrual["reference x2"] == pytest.approx(accrual["file"] / 2, rel=1e-12)
    assert accrual["batch x3"] == pytest.approx(accrual["file"] * 3, rel=1e-12)


def test_limits_are_bit_neutral_when_a_scenario_has_none(baseline_run):
    assert "cn_quota_bank_t" not in baseline_run.timeseries.columns


def test_japan_2010_is_deterministic_and_draws_only_from_the_model_rng():
    cfg = load_scenario(JAPAN, ["scenario.end=2010-12-31"])
    a, b, c = (run_scenario(cfg, s).timeseries for s in (11, 11, 12))
    assert a.equals(b)
    assert not a.equals(c)  # seeds differ in plant sizes, buffers and portfolios


def test_the_limits_figure_is_drawn_only_for_scenarios_with_limits(tmp_path, baseline_run):
    from rareshock.outputs import write_figures

    ts = run_scenario(load_scenario(JAPAN, ["scenario.end=2010-12-31"]), 1).timeseries
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert "export_limits.png" in write_figures(ts, tmp_path / "a")
    assert "export_limits.png" not in write_figures(baseline_run.timeseries, tmp_path / "b")
