"""rareshock as an EMA Workbench model (rareshock.ema): the numbers equal direct runs, the sweep's parameters
become uncertainties and levers of the right types and ranges, bad input is a one-line ConfigError before
anything runs, a failed run is NaN instead of an exception, and the same experiments give the same outcomes."""

from __future__ import annotations

import tomllib
import warnings

import numpy as np
import pandas as pd
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import ema_workbench as ema

import rareshock
from rareshock.calibration.posterior import draw_seed
from rareshock.ema import LEVER_PATHS, RunFailedWarning, ema_model, from_sweep, is_lever, replicate_median
from rareshock.model.config import ConfigError
from rareshock.resources import locate

END = "2025-05-31"  # five months: the April shock and the first idle US plants


def _run(model, scenarios, policies=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ema.perform_experiments(
            model, scenarios=scenarios, policies=policies or 0, evaluator=ema.SequentialEvaluator(model)
        )


def _shock_model(**kwargs):
    return ema_model(
        "april_2025_shock",
        seed=5,
        scenario__end=END,
        uncertainties=[
            ema.IntegerParameter("licensing__cn__reviewers", 10, 60),
            ema.RealParameter("automakers__US__buffer_days_mean", 10.0, 60.0),
        ],
        levers=[ema.RealParameter("defense__us_national_stockpile_t", 0.0, 500.0)],
        outcomes=[
            "us_auto_idle_plant_days",
            "cn_licences.approved",
            "first_us_auto_shutdown_day",
            "auto_plants_idle_us",
        ],
        frequency="monthly",
        **kwargs,
    )


def test_outcomes_equal_a_direct_run_with_the_same_values_and_seed() -> None:
    model = _shock_model()
    values = [
        {"licensing__cn__reviewers": 20, "automakers__US__buffer_days_mean": 12.0},
        {"licensing__cn__reviewers": 50, "automakers__US__buffer_days_mean": 55.0},
    ]
    lever = {"defense__us_national_stockpile_t": 200.0}
    scenarios = [ema.Sample("short_buffers", **values[0]), ema.Sample("long_buffers", **values[1])]
    experiments, outcomes = _run(model, scenarios, [ema.Sample("stock", **lever)])
    assert list(experiments["scenario"]) == ["short_buffers", "long_buffers"]
    for i, v in enumerate(values):
        r = rareshock.run("april_2025_shock", seed=5, scenario__end=END, **v, **lever)
        assert outcomes["us_auto_idle_plant_days"][i] == r.summary["us_auto_idle_plant_days"]
        assert outcomes["cn_licences__approved"][i] == r.summary["cn_licences"]["approved"]
        first = r.summary["first_us_auto_shutdown_day"]
        assert outcomes["first_us_auto_shutdown_day"][i] == first or (
            first is None and np.isnan(outcomes["first_us_auto_shutdown_day"][i])
        )
        monthly = r.timeseries.set_index("date")["auto_plants_idle_us"].resample("MS").mean().to_numpy()
        assert monthly.shape == (5,)
        np.testing.assert_array_equal(outcomes["auto_plants_idle_us"][i], monthly)
    # the values matter: short buffers idle US plants, long ones do not within five months
    assert outcomes["us_auto_idle_plant_days"][0] > outcomes["us_auto_idle_plant_days"][1]


def test_from_sweep_types_ranges_and_lever_rule() -> None:
    with open(locate("sobol_april_2025", "sweep"), "rb") as f:
        spec = tomllib.load(f)
    model = from_sweep("sobol_april_2025")
    assert len(model.levers) == 0  # all eight are world and behaviour parameters
    assert [p.name for p in model.uncertainties] == [p["path"].replace(".", "__") for p in spec["parameters"]]
    for p in spec["parameters"]:
        par = model.uncertainties[p["path"].replace(".", "__")]
        assert type(par) is (ema.IntegerParameter if p.get("integer") else ema.RealParameter)
        assert (par.lower_bound, par.upper_bound) == (p["low"], p["high"])
    assert [o.name for o in model.outcomes] == spec["sweep"]["outputs"]
    # the sweep's two replications: one column per replicate, seeds as draws of `run --posterior`
    assert isinstance(model, ema.ReplicatorModel)
    assert [rep["seed"] for rep in model.replications] == [draw_seed(spec["sweep"]["seed"], r) for r in range(2)]
    assert all(isinstance(o, ema.ScalarOutcome) and o.function is replicate_median for o in model.outcomes)

    # the rule can be overridden per path
    moved = from_sweep("sobol_april_2025", levers=["automakers.US.buffer_days_mean"], replications=1)
    assert [p.name for p in moved.levers] == ["automakers__US__buffer_days_mean"]
    assert len(moved.uncertainties) == 7 and not isinstance(moved, ema.ReplicatorModel)
    assert moved.constants["seed"].value == spec["sweep"]["seed"]

    # a grid of levers over a calibration's posterior: listed values stay the sweep's values
    deal = from_sweep("budget_x_deal")
    assert len(deal.uncertainties) == 0
    budget = deal.levers["investment__budget_usd"]
    assert type(budget) is ema.CategoricalParameter
    assert [c.value for c in budget.categories] == [0.0, 1.0e9, 3.0e9, 1.0e10, 3.0e10, 1.0e11, 1.0e12]
    assert type(deal.levers["policy__deal"]) is ema.BooleanParameter
    assert len(deal.replications) == 10 and [rep["posterior_draw"] for rep in deal.replications] == list(range(10))

    assert is_lever("policy.deal") and is_lever("investment.budget_usd") and is_lever("chips.bis.reviewers")
    assert not is_lever("licensing.cn.reviewers") and not is_lever("investment.learning_rate")
    assert not is_lever("policy_x") and "policy" in LEVER_PATHS


def test_posterior_replicates_equal_direct_runs_of_the_draws() -> None:
    """A sweep over posterior draws: replicate r is draw r with seed SeedSequence(sweep seed, (r,)); a named
    outcome is the median over the draws, an ArrayOutcome keeps each."""
    model = from_sweep("budget_x_deal", scenario__end="2025-04-30")
    model.outcomes = [ema.ArrayOutcome("lost_vehicles_by_region__US")]
    policy = ema.Sample("big", investment__budget_usd=1.0e11, policy__deal=False)
    _, outcomes = _run(model, 0, [policy])
    lost = outcomes["lost_vehicles_by_region__US"]
    assert lost.shape == (1, 10)
    idle = []
    for r in range(10):
        values = {k.replace(".", "__"): v for k, v in model.function.draws[r].items()}
        direct = rareshock.run(
            "managed_derisking", seed=draw_seed(11, r), scenario__end="2025-04-30", **values, **dict(policy)
        )
        assert lost[0, r] == direct.summary["lost_vehicles_by_region"]["US"]
        idle.append(direct.summary["us_auto_idle_plant_days"])
    assert outcomes["us_auto_idle_plant_days"][0] == np.median(idle)
    assert len(set(lost[0])) > 1  # the draws differ


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"uncertainties": [ema.RealParameter("licensing__cn__reviewrs", 10, 60)]},
            "uncertainties 'licensing__cn__reviewrs': 'licensing.cn.reviewrs' is not a scenario field; "
            "did you mean 'licensing.cn.reviewers'?",
        ),
        (
            {"levers": [ema.RealParameter("licensing__cn__reviewers", 10, 60)]},
            "levers 'licensing__cn__reviewers': licensing.cn.reviewers is a whole-number field; "
            "use IntegerParameter, not RealParameter",
        ),
        (
            {"uncertainties": [ema.RealParameter("licensing__cn__p_incomplete", 0.5, 1.5)]},
            "uncertainties 'licensing__cn__p_incomplete' = 1.125: licensing.cn.p_incomplete:",
        ),
        ({"outcomes": ["us_idle_plant_days"]}, "outcomes: 'us_idle_plant_days' is not a summary metric"),
        ({"frequency": "hourly"}, "frequency: 'hourly' is not allowed (allowed: daily, weekly, monthly)"),
    ],
)
def test_bad_input_is_one_line_config_error_before_anything_runs(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        ema_model("april_2025_shock", **kwargs)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_parameters_set_later_and_sweep_overrides_are_checked() -> None:
    model = ema_model("april_2025_shock", scenario__end=END)
    with pytest.raises(ConfigError, match=r"^uncertainties 'shipping__sea_days__XX': 'shipping.sea_days.XX' is not"):
        model.uncertainties = [ema.IntegerParameter("shipping__sea_days__XX", 20, 30)]
    assert len(model.uncertainties) == 0  # nothing was added
    model.uncertainties = [ema.RealParameter("automakers__US__buffer_days_mean", 10.0, 60.0)]
    with pytest.raises(ConfigError, match="already one of the uncertainties"):
        model.levers = [ema.RealParameter("automakers__US__buffer_days_mean", 10.0, 60.0)]
    with pytest.raises(ConfigError, match=r"^levers: 'licensing.cn.reviewer' is not a parameter of sweep "):
        from_sweep("sobol_april_2025", levers=["licensing.cn.reviewer"])
    with pytest.raises(ConfigError, match="function that aggregates them"):
        from_sweep("sobol_april_2025", outcomes=[ema.ScalarOutcome("us_auto_idle_plant_days")])


def test_a_failed_run_is_nan_with_a_warning_and_the_others_go_on() -> None:
    model = ema_model(
        "april_2025_shock",
        seed=5,
        scenario__end=END,
        uncertainties=[ema.RealParameter("automakers__US__bev_share", 0.0, 0.5)],
        outcomes=["us_auto_idle_plant_days", "auto_plants_idle_us"],
        frequency="monthly",
    )
    # bev_share + hev_share above 1: the schema rejects the combination when the run is built
    scenarios = [ema.Sample("bad", automakers__US__bev_share=0.99), ema.Sample("ok", automakers__US__bev_share=0.2)]
    with pytest.warns(RunFailedWarning, match=r"automakers__US__bev_share=0.99, seed=5\): ConfigError: automakers"):
        _, outcomes = _run(model, scenarios)
    assert np.isnan(outcomes["us_auto_idle_plant_days"][0])
    assert outcomes["auto_plants_idle_us"].shape == (2, 5) and np.isnan(outcomes["auto_plants_idle_us"][0]).all()
    direct = rareshock.run("april_2025_shock", seed=5, scenario__end=END, automakers__US__bev_share=0.2)
    assert outcomes["us_auto_idle_plant_days"][1] == direct.summary["us_auto_idle_plant_days"]


def test_same_experiments_same_outcomes() -> None:
    def once() -> tuple[pd.DataFrame, dict]:
        model = _shock_model()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return ema.perform_experiments(
                model,
                scenarios=3,
                policies=2,
                uncertainty_sampling_kwargs={"rng": 42},
                lever_sampling_kwargs={"rng": 43},
                evaluator=ema.SequentialEvaluator(model),
            )

    (ex1, out1), (ex2, out2) = once(), once()
    cols = ["licensing__cn__reviewers", "automakers__US__buffer_days_mean", "defense__us_national_stockpile_t"]
    pd.testing.assert_frame_equal(ex1[cols], ex2[cols])
    assert len(ex1) == 6
    for name in out1:
        np.testing.assert_array_equal(out1[name], out2[name])


def test_posterior_model_medians_equal_run_posterior() -> None:
    """``ema_model(..., posterior=N)`` runs the draws and seeds of ``rareshock.run(..., posterior=N)``."""
    model = ema_model(
        "april_2025_shock", posterior=3, scenario__end=END, outcomes=["peak_auto_plants_idle_by_region.US"]
    )
    _, outcomes = _run(model, 0, [ema.Sample("none")])
    p = rareshock.run("april_2025_shock", posterior=3, scenario__end=END, workers=1)
    assert outcomes["peak_auto_plants_idle_by_region__US"][0] == p.summary["peak_auto_plants_idle_by_region"]["US"]
    assert [rep["seed"] for rep in model.replications] == [draw_seed(20250404, r) for r in range(3)]


def test_levers_only_model_runs_several_policies_and_optimize(tmp_path) -> None:
    """A model without uncertainties runs several policies (ema_workbench 3.0.0 would see the levers twice),
    and many-objective search (platypus) returns policies whose outcomes are those of direct runs."""
    model = ema_model(
        "april_2025_shock",
        seed=3,
        scenario__end=END,
        levers=[
            ema.RealParameter("automakers__US__buffer_days_mean", 7.0, 60.0),
            ema.IntegerParameter("licensing__cn__reviewers", 10, 120),
        ],
        outcomes=[
            ema.ScalarOutcome("peak_auto_plants_idle_by_region__US", kind=ema.ScalarOutcome.MINIMIZE),
            ema.ScalarOutcome("lost_production_share_by_region__US", kind=ema.ScalarOutcome.MINIMIZE),
        ],
    )
    policies = [
        ema.Sample(f"p{i}", automakers__US__buffer_days_mean=b, licensing__cn__reviewers=n)
        for i, (b, n) in enumerate([(10.0, 20), (30.0, 60), (50.0, 100)])
    ]
    experiments, outcomes = _run(model, 0, policies)
    assert list(experiments["policy"]) == ["p0", "p1", "p2"] and outcomes["peak_auto_plants_idle_by_region__US"][0] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        front, _ = ema.optimize(
            model,
            nfe=20,
            searchover="levers",
            epsilons=[1.0, 0.001],
            population_size=10,
            rng=1,
            evaluator=ema.SequentialEvaluator(model),
            directory=str(tmp_path),
            filename="archives.tar.gz",
        )
    assert len(front) >= 1
    row = front.iloc[0]
    assert 7.0 <= row["automakers__US__buffer_days_mean"] <= 60.0
    direct = rareshock.run(
        "april_2025_shock",
        seed=3,
        scenario__end=END,
        automakers__US__buffer_days_mean=float(row["automakers__US__buffer_days_mean"]),
        licensing__cn__reviewers=int(row["licensing__cn__reviewers"]),
    )
    assert row["lost_production_share_by_region__US"] == direct.summary["lost_production_share_by_region"]["US"]
