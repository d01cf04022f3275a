"""The browser explorer: one scenario in Mesa's SolaraViz (``rareshock explore``).

Pick a shipped scenario, change its key parameters in the sidebar, press *Reset* to rebuild the model with
them, and watch the timeline: China's magnet exports by destination, MOFCOM's licences, idle assembly plants
by region, prices in and outside China, and the non-Chinese share of US magnet supply. Every panel marks the
scenario's policy events (numbered grey lines; the numbers are listed in the summary) and the policy moves the
model makes itself (deal breakdowns, retaliation: red lines, lettered), and draws the *reference run* (the
scenario as shipped, same seed) as thin dashed lines; with an ensemble of seeds, the 10-90% band over them.

:class:`ExplorerModel` is a thin Mesa model: its keyword parameters are the controls, its ``step`` advances
the underlying :class:`~rareshock.model.model.RareShockModel` (every member of the ensemble) by one day. A
parameter is applied as a ``--set`` override only when it differs from the scenario's own value, so with the
controls untouched the run is exactly ``rareshock run SCENARIO`` (and ``rareshock.run(SCENARIO, seed,
**model.overrides)`` gives the same numbers for any setting).

Start it with ``rareshock explore`` (or ``solara run rareshock.explore``). ``python -m rareshock.explore
--screenshot docs/explorer.png`` drives the page in headless Chromium (Playwright) and saves screenshots.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape as esc

import mesa
import numpy as np
import solara
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory
from mesa.visualization import SolaraViz
from mesa.visualization.utils import force_update, update_counter

from rareshock.calibration.posterior import draw_seed
from rareshock.cli import explore_command, explore_env
from rareshock.figstyle import event_label
from rareshock.model.codes import REGIONS
from rareshock.model.config import ConfigError, ScenarioConfig, load_scenario
from rareshock.model.model import RareShockModel
from rareshock.resources import catalogue

DEFAULT_SCENARIO = "april_2025_shock"
PLANT_REGIONS = ("US", "EU", "JP", "IN", "CN", "ROW")
# programme budget choices (label -> USD; None keeps the scenario's investment.budget_usd)
BUDGETS = {
    "as in scenario": None,
    "$0": 0.0,
    "$1bn": 1e9,
    "$10bn": 1e10,
    "$100bn": 1e11,
    "$1,000bn": 1e12,
}
ENSEMBLE_SIZES = [1, 5, 10]
# the sliders' defaults are the shipped scenarios' values (model/config.py and model/worlds/*.toml)
REVIEWERS_DEFAULT = 30
P_APPROVE_DEFAULT = 0.85


# --------------------------------------------------------------------------------------------------
# The model behind the page
# --------------------------------------------------------------------------------------------------
def scenario_names() -> list[str]:
    """The shipped scenarios (``rareshock list``)."""
    return [name for name, _, _ in catalogue("scenario")]


def overrides_for(
    base: ScenarioConfig, buffers: float, reviewers: int, p_approve: float, deal: bool, budget: str
) -> dict[str, object]:
    """The controls as config overrides (dotted path -> value), only those that differ from ``base``."""
    out: dict[str, object] = {}
    if buffers != 1.0:
        for region in PLANT_REGIONS:
            out[f"automakers.{region}.buffer_days_mean"] = getattr(base.automakers, region).buffer_days_mean * buffers
    if reviewers != base.licensing.cn.reviewers:
        out["licensing.cn.reviewers"] = int(reviewers)
    if p_approve != base.licensing.cn.p_approve_civil:
        out["licensing.cn.p_approve_civil"] = float(p_approve)
    if deal != base.policy.deal:
        out["policy.deal"] = bool(deal)
    usd = BUDGETS[budget]
    if usd is not None and usd != base.investment.budget_usd:
        out["investment.budget_usd"] = usd
    return out


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


@dataclass(frozen=True)
class Reference:
    """The scenario as shipped, run to its end with its seed."""

    data: np.ndarray  # days x columns
    index: dict[str, int]
    vpd_us: float


@functools.lru_cache(maxsize=8)
def reference(scenario: str) -> Reference:
    cfg = load_scenario(scenario, [])
    model = RareShockModel(cfg, rng=cfg.scenario.seed)
    while model.running:
        model.step()
    return Reference(model.records.data.copy(), dict(model.records.index), _vpd_us(model))


def _vpd_us(model: RareShockModel) -> float:
    return float(model.plants.vpd_by_region[REGIONS.index("US")])


class ExplorerModel(mesa.Model):
    """One scenario with the explorer's controls, as a Mesa model whose step is one simulated day.

    Args:
        scenario_name: a shipped scenario (``rareshock list``). (Not ``scenario``: Mesa's models keep their
            own ``scenario`` object, which SolaraViz passes on Reset.)
        buffers: automakers' magnet buffers in every region, as a multiple of the scenario's
            (``automakers.<region>.buffer_days_mean``).
        reviewers: MOFCOM's licence reviewers at the start (``licensing.cn.reviewers``).
        p_approve: MOFCOM's odds of approving a civil licence at the start (``licensing.cn.p_approve_civil``;
            events that set them later, such as a deal's terms, still do).
        deal: whether a deal in the scenario takes effect (``policy.deal``).
        budget: the derisking programme's budget (a key of :data:`BUDGETS`; ``investment.budget_usd``).
        seeds: runs in the ensemble: the scenario's seed, then ``SeedSequence(seed, spawn_key=(d,))`` for
            d = 1.. (the seeds ``rareshock run --posterior`` gives its draws).
        animate: if False (the default) the model runs to its end at once; if True it starts on day 0 and
            advances one day per step (Play, Step).
        rng: Mesa's seed for this wrapper (unused: every draw comes from the scenario's seeds).
    """

    def __init__(
        self,
        scenario_name: str = DEFAULT_SCENARIO,
        buffers: float = 1.0,
        reviewers: int = REVIEWERS_DEFAULT,
        p_approve: float = P_APPROVE_DEFAULT,
        deal: bool = True,
        budget: str = "as in scenario",
        seeds: int = 1,
        animate: bool = False,
        rng=None,
    ):
        super().__init__(rng=rng)
        self.scenario_name = scenario_name
        self.buffers = buffers
        self.error: str | None = None
        self.members: list[RareShockModel] = []
        self.day = 0
        try:
            base = load_scenario(scenario_name, [])
            self.overrides = overrides_for(base, buffers, reviewers, p_approve, deal, budget)
            self.cfg = load_scenario(scenario_name, [f"{k}={_toml(v)}" for k, v in self.overrides.items()])
            seed = self.cfg.scenario.seed
            self.seeds = [seed] + [draw_seed(seed, d) for d in range(1, int(seeds))]
            self.members = [RareShockModel(self.cfg, rng=s) for s in self.seeds]
            self.reference = reference(scenario_name)
        except ConfigError as err:
            self.error = str(err)
            self.running = False
            return
        main = self.members[0]
        self.n_days = main.n_days
        self.start = main.start
        self.dates = np.array([np.datetime64(self.start) + np.timedelta64(d, "D") for d in range(self.n_days)])
        self.index = main.records.index
        self.running = True
        if not animate:
            self.run_to_end()

    def step(self) -> None:
        if self.error or self.day >= self.n_days:
            self.running = False
            return
        for member in self.members:
            member.step()
        self.day += 1
        self.running = self.day < self.n_days

    def describe_overrides(self) -> str:
        """The overrides in short (the buffers of every region as one factor)."""
        items = {k: v for k, v in self.overrides.items() if not k.endswith(".buffer_days_mean")}
        parts = [f"{k} = {_short(v)}" for k, v in items.items()]
        if len(items) < len(self.overrides):
            us = self.overrides["automakers.US.buffer_days_mean"]
            parts.insert(0, f"automakers.*.buffer_days_mean x {self.buffers:g} (US {us:.3g} days)")
        return ", ".join(parts) or "none (as shipped)"

    def run_to_end(self) -> None:
        while self.running:
            self.step()

    # ---------------------------------------------------------------- what the panels read
    def column(self, name: str) -> np.ndarray:
        """``name`` over the members (rows) for the days simulated so far."""
        i = self.index[name]
        return np.stack([m.records.data[: self.day, i] for m in self.members])

    def reference_column(self, name: str) -> np.ndarray:
        return self.reference.data[:, self.reference.index[name]]

    def events(self) -> list[tuple[dt.date, str]]:
        """The scenario's dated events (date, short label)."""
        return [(ev.date, event_label(ev, detail=True)) for ev in self.cfg.events]

    def model_moves(self) -> list[tuple[dt.date, str]]:
        """Policy moves the model made itself in the main run so far (deal breakdown, retaliation, lapses)."""
        if not self.members:
            return []
        log = self.members[0].governments.diplomacy.log
        return [
            (self.start + dt.timedelta(days=d), what)
            for d, what in log
            if what != "deal" and " suspended until " not in what
        ]

    def headline(self) -> list[tuple[str, str, str]]:
        """(measure, this run, reference) for the summary table; this run so far, the reference whole."""
        idle = self.column("auto_plants_idle_us")[0]
        ref_idle = self.reference_column("auto_plants_idle_us")
        main = self.members[0]
        vpd = _vpd_us(main)
        made = self.column("vehicles_produced_us")[0]
        ref_made = self.reference_column("vehicles_produced_us")

        def first_idle(x: np.ndarray) -> str:
            hit = np.flatnonzero(x > 0)
            return str(self.start + dt.timedelta(days=int(hit[0]))) if hit.size else "none"

        def last(name: str, ref: bool) -> float:
            x = self.reference_column(name) if ref else self.column(name)[0]
            return float(x[-1]) if x.size else 0.0

        def share(ref: bool) -> str:
            s = monthly_share(self, ref)
            s = s[~np.isnan(s)] if s.size else s
            return f"{100 * s[-1]:.0f}%" if s.size else "n/a"

        rows = [
            ("First idle US plant", first_idle(idle), first_idle(ref_idle)),
            ("US idle plant-days", f"{int(idle.sum()):,}", f"{int(ref_idle.sum()):,}"),
            ("Peak idle US plants", f"{int(idle.max(initial=0))}", f"{int(ref_idle.max(initial=0))}"),
            (
                "US vehicles short of plan",
                f"{vpd * self.day - made.sum():,.0f}",
                f"{self.reference.vpd_us * len(ref_made) - ref_made.sum():,.0f}",
            ),
        ]
        for label, col in (
            ("Licences approved", "cn_licences_approved_cum"),
            ("Licences denied", "cn_licences_denied_cum"),
            ("Licences pending", "cn_licences_pending"),
        ):
            rows.append((label, f"{last(col, False):,.0f}", f"{last(col, True):,.0f}"))
        peak = self.column("price_ndfeb_ex_cn_usd_kg")[0]
        rows.append(
            (
                "Peak NdFeB price outside China (USD/kg)",
                f"{peak.max(initial=0):,.1f}",
                f"{self.reference_column('price_ndfeb_ex_cn_usd_kg').max():,.1f}",
            )
        )
        rows.append(("Non-Chinese share of US magnets (last month)", share(False), share(True)))
        if len(self.members) > 1:
            per = self.column("auto_plants_idle_us").sum(axis=1)
            lo, hi = np.percentile(per, [10, 90])
            rows.append((f"US idle plant-days, 10-90% over {len(self.members)} seeds", f"{lo:,.0f}-{hi:,.0f}", ""))
        return rows


# --------------------------------------------------------------------------------------------------
# Panels (matplotlib)
# --------------------------------------------------------------------------------------------------
FIGSIZE = (6.4, 2.85)
REF_STYLE = {"ls": (0, (4, 2)), "lw": 1.0, "alpha": 0.75}
RUN_STYLE = {"lw": 1.6}


def _blocks(model: ExplorerModel, by: str) -> tuple[np.ndarray, np.ndarray]:
    """The block (calendar month, or 7-day week from the start) of every day, and each block's middle."""
    if by == "month":
        months, inverse = np.unique(model.dates.astype("datetime64[M]"), return_inverse=True)
        return inverse, months.astype("datetime64[D]") + np.timedelta64(14, "D")
    inverse = np.arange(model.n_days) // 7
    return inverse, model.dates[::7] + np.timedelta64(3, "D")


def aggregate(
    model: ExplorerModel, name: str, by: str = "month", ref: bool = False, mean: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Totals (or means) of ``name`` by month or week: (block middles, values) for the reference, or
    (middles, members x blocks) for the blocks the run has completed so far."""
    inv, mid = _blocks(model, by)
    k = len(mid)
    size = np.bincount(inv, minlength=k) if mean else np.ones(k)
    if ref:
        return mid, np.bincount(inv, model.reference_column(name), minlength=k) / size
    day = model.day
    # blocks completed: those before the current day's, and the current one if it ended yesterday
    done = 0 if day == 0 else int(inv[day - 1]) + int(day == model.n_days or inv[day] != inv[day - 1])
    x = model.column(name)
    totals = np.array([np.bincount(inv[:day], row, minlength=k) for row in x]).reshape(len(x), k) / size
    return mid[:done], totals[:, :done]


def monthly_share(model: ExplorerModel, ref: bool) -> np.ndarray:
    """Non-Chinese share of US magnet arrivals by month (main run, or the reference)."""
    _, free = aggregate(model, "us_magnets_non_cn_t", ref=ref)
    _, received = aggregate(model, "us_magnets_received_t", ref=ref)
    if not ref:
        free, received = free[0], received[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(received > 0, free / received, np.nan)


def _axes(title: str, ylabel: str) -> tuple[Figure, object]:
    fig = Figure(figsize=FIGSIZE, dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10, loc="left", pad=12)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7.5)
    ax.grid(True, lw=0.4, alpha=0.5)
    return fig, ax


def _finish(ax, model: ExplorerModel, handles: list, log: bool = False) -> None:
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlim(model.dates[0], model.dates[-1])
    if not log:
        ax.set_ylim(bottom=0)
    _mark_events(ax, model)
    from matplotlib.lines import Line2D

    style = [
        Line2D([], [], color="0.2", **RUN_STYLE, label="this run"),
        Line2D([], [], color="0.2", **REF_STYLE, label="reference"),
    ]
    if len(model.members) > 1:
        from matplotlib.patches import Patch

        style.append(Patch(color="0.2", alpha=0.2, label=f"10-90%, {len(model.members)} seeds"))
    ax.legend(
        handles=handles + style,
        fontsize=6.5,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        handlelength=2.2,
    )


def _mark_events(ax, model: ExplorerModel) -> None:
    """Grey numbered lines at the scenario's events, red lettered ones at the model's own moves; labels of
    events closer than about 2% of the axis share one label ("1-8")."""
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    span = float((model.dates[-1] - model.dates[0]) / np.timedelta64(1, "D")) or 1.0
    for marks, color in (
        ([(np.datetime64(d), str(i)) for i, (d, _) in enumerate(model.events(), start=1)], "0.4"),
        ([(np.datetime64(d), chr(ord("a") + j % 26)) for j, (d, _) in enumerate(model.model_moves())], "tab:red"),
    ):
        groups: list[list] = []
        for x, label in marks:
            ax.axvline(x, color=color, lw=0.7, ls=":", zorder=0, alpha=0.8)
            near = groups and (x - groups[-1][-1][0]) / np.timedelta64(1, "D") < 0.02 * span
            if near:
                groups[-1].append((x, label))
            else:
                groups.append([(x, label)])
        for g in groups:
            text = g[0][1] if len(g) == 1 else f"{g[0][1]}-{g[-1][1]}"
            mid = g[0][0] + (g[-1][0] - g[0][0]) / 2
            ax.text(mid, 1.005, text, transform=trans, fontsize=6.5, color=color, ha="center", va="bottom")


def _series(ax, x, runs: np.ndarray, ref_x, ref: np.ndarray, color, label: str) -> object:
    """One measure: the main run (solid), the band over members, the reference (dashed)."""
    ax.plot(ref_x, ref, color=color, **REF_STYLE)
    (line,) = ax.plot(x, runs[0] if len(runs) else [], color=color, label=label, **RUN_STYLE)
    if len(runs) > 1 and runs.shape[1]:
        lo, hi = np.nanpercentile(runs, [10, 90], axis=0)
        ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
    return line


def panel_exports(model: ExplorerModel) -> Figure:
    fig, ax = _axes("China's magnet exports by destination", "tonnes per month")
    handles = []
    mid, total = aggregate(model, "cn_magnet_exports_t")
    ref_mid, ref_total = aggregate(model, "cn_magnet_exports_t", ref=True)
    rest, ref_rest = total.copy(), ref_total.copy()
    for i, dest in enumerate(("US", "EU", "JP", "IN")):
        col = f"cn_magnet_exports_to_{dest.lower()}_t"
        _, x = aggregate(model, col)
        _, r = aggregate(model, col, ref=True)
        rest, ref_rest = rest - x, ref_rest - r
        handles.append(_series(ax, mid, x, ref_mid, r, f"C{i}", dest))
    handles.append(_series(ax, mid, rest.clip(min=0), ref_mid, ref_rest.clip(min=0), "C7", "other"))
    _finish(ax, model, handles)
    return fig


def _daily_lines(ax, model: ExplorerModel, specs: tuple[tuple[str, str, str], ...]) -> list:
    """This run's and the reference's daily series of each (column, colour, label); the legend handles."""
    x = model.dates[: model.day]
    return [
        _series(ax, x, model.column(col), model.dates, model.reference_column(col), color, label)
        for col, color, label in specs
    ]


def panel_licences(model: ExplorerModel) -> Figure:
    fig, ax = _axes("MOFCOM export licences", "applications")
    handles = _daily_lines(
        ax,
        model,
        (
            ("cn_licences_pending", "C4", "pending"),
            ("cn_licences_approved_cum", "C2", "approved (cum.)"),
            ("cn_licences_denied_cum", "C3", "denied (cum.)"),
            ("cn_licences_returned_cum", "C1", "returned (cum.)"),
        ),
    )
    _finish(ax, model, handles)
    return fig


def panel_idle(model: ExplorerModel) -> Figure:
    fig, ax = _axes("Assembly plants idle for lack of magnets", "idle plants (weekly mean)")
    handles = []
    for i, region in enumerate(PLANT_REGIONS):
        col = f"auto_plants_idle_{region.lower()}"
        mid, x = aggregate(model, col, "week", mean=True)
        ref_mid, r = aggregate(model, col, "week", ref=True, mean=True)
        handles.append(_series(ax, mid, x, ref_mid, r, f"C{i}", region))
    _finish(ax, model, handles)
    return fig


def panel_prices(model: ExplorerModel) -> Figure:
    fig, ax = _axes("Prices in and outside China", "USD/kg (log scale)")
    handles = _daily_lines(
        ax,
        model,
        (
            ("price_ndfeb_cn_usd_kg", "C3", "NdFeB magnet, China"),
            ("price_ndfeb_ex_cn_usd_kg", "C0", "NdFeB magnet, outside"),
            ("price_dy_oxide_cn_usd_kg", "C1", "Dy oxide, China"),
            ("price_dy_oxide_ex_cn_usd_kg", "C9", "Dy oxide, outside"),
        ),
    )
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    _finish(ax, model, handles, log=True)
    return fig


def panel_non_cn(model: ExplorerModel) -> Figure:
    fig, ax = _axes("US magnet supply free of Chinese material", "share of arrivals (%)")
    mid, free = aggregate(model, "us_magnets_non_cn_t")
    _, received = aggregate(model, "us_magnets_received_t")
    ref_mid = aggregate(model, "us_magnets_non_cn_t", ref=True)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        runs = np.where(received > 0, 100 * free / np.where(received > 0, received, 1), np.nan)
    ref = 100 * monthly_share(model, ref=True)
    handles = [_series(ax, mid, runs, ref_mid, ref, "C2", "US, all uses")]
    _finish(ax, model, handles)
    top = np.nanmax(np.concatenate([ref, runs.ravel()]), initial=0.0)
    ax.set_ylim(0, min(100.0, max(5.0, 1.15 * top)))
    return fig


PANELS = (panel_exports, panel_licences, panel_idle, panel_prices, panel_non_cn)


# --------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------
def model_params() -> dict:
    """The sidebar controls (Mesa's ``model_params``): the keyword parameters of :class:`ExplorerModel`."""
    return {
        "scenario_name": {"type": "Select", "value": DEFAULT_SCENARIO, "values": scenario_names(), "label": "Scenario"},
        "buffers": {
            "type": "SliderFloat",
            "value": 1.0,
            "min": 0.25,
            "max": 3.0,
            "step": 0.25,
            "label": "Buffers (x scenario)",
        },
        "reviewers": {
            "type": "SliderInt",
            "value": REVIEWERS_DEFAULT,
            "min": 5,
            "max": 200,
            "step": 5,
            "label": "Reviewers",
        },
        "p_approve": {
            "type": "SliderFloat",
            "value": P_APPROVE_DEFAULT,
            "min": 0.0,
            "max": 1.0,
            "step": 0.05,
            "label": "Approval odds",
        },
        "deal": {"type": "Checkbox", "value": True, "label": "Deal takes effect"},
        "budget": {"type": "Select", "value": "as in scenario", "values": list(BUDGETS), "label": "Programme budget"},
        "seeds": {"type": "Select", "value": 1, "values": ENSEMBLE_SIZES, "label": "Ensemble (seeds)"},
        "animate": {"type": "Checkbox", "value": False, "label": "Play day by day"},
    }


def Summary(model: ExplorerModel):
    """The run's date, headline numbers beside the reference's, and the numbered list of events (plain HTML:
    solara's Markdown would load mermaid and KaTeX from a CDN)."""
    with solara.Card(style={"font-size": "13px"}) as card:
        if model.error:
            solara.Error(f"rareshock: {model.error}")
            return card
        reached = model.start + dt.timedelta(days=max(model.day - 1, 0))
        changed = model.describe_overrides()
        rows = "".join(
            f"<tr><td>{esc(a)}</td><td style='text-align:right'>{esc(b)}</td>"
            f"<td style='text-align:right;color:#666'>{esc(c)}</td></tr>"
            for a, b, c in model.headline()
        )
        events = [f"{i}. {date}: {esc(label)}" for i, (date, label) in enumerate(model.events(), start=1)]
        moves = [f"{chr(ord('a') + j % 26)}. {date}: {esc(w)}" for j, (date, w) in enumerate(model.model_moves())]
        solara.HTML(
            "div",
            unsafe_innerHTML=(
                f"<b>{esc(model.scenario_name)}</b>, seed {model.seeds[0]}: day {model.day} of {model.n_days} "
                f"({reached})<br>Overrides: {esc(changed)}"
                "<table style='border-collapse:collapse;margin:6px 0;width:100%'>"
                "<tr><th></th><th style='text-align:right'>this run</th><th style='text-align:right'>reference</th>"
                f"</tr>{rows}</table>"
                f"<b>Events</b> (grey lines)<br>{'<br>'.join(events or ['none'])}"
                + (f"<br><b>The model's own moves</b> (red lines)<br>{'<br>'.join(moves)}" if moves else "")
            ),
        )
        if model.running:
            solara.Button("Run to end", color="primary", on_click=lambda: (model.run_to_end(), force_update()))
    return card


def _short(value: object) -> str:
    if isinstance(value, float) and abs(value) >= 1e6:
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@solara.component
def Dashboard(model: ExplorerModel):
    """The main area: the summary and the five panels, two to a row."""
    update_counter.get()  # redraw after Step, Play and Run to end
    with solara.GridFixed(columns=2, align_items="start", column_gap="8px", row_gap="8px"):
        Summary(model)
        if not model.error:
            for draw in PANELS:
                solara.FigureMatplotlib(draw(model), format="png", dpi=100)


@solara.component
def Page():
    """SolaraViz's sidebar (controls, parameters, Reset/Play/Step) around the explorer's own main area.

    The panels are laid out by :func:`Dashboard` rather than by SolaraViz's component grid: that grid is
    solara's ``GridDraggable``, whose layout library (vue-grid-layout, a Vue 2 plugin) fails to load in the
    Vue 3 front end of solara 1.64 ("GlobalVue.use is not a function") and leaves the main area empty. The
    model is passed as a reactive value, so Reset (which replaces it) redraws the dashboard too.
    """
    first = solara.use_memo(ExplorerModel, [])
    model = solara.use_reactive(first)
    SolaraViz(
        model,
        components=[],
        model_params=model_params(),
        name="rareshock explorer",
        play_interval=50,
        render_interval=7,
    )
    Dashboard(model.value)


# --------------------------------------------------------------------------------------------------
# Serving the page, and screenshots
# --------------------------------------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(host: str = "127.0.0.1", port: int | None = None, timeout: float = 90.0, log=None) -> Iterator[str]:
    """Run the explorer's server in a subprocess until the block ends; yields its URL."""
    port = free_port(host) if port is None else port
    proc = subprocess.Popen(
        explore_command(host, port),
        env=explore_env(),
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
    )
    url = f"http://{host}:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the explorer's server exited with code {proc.returncode}")
            # not listening yet (connection refused) is an OSError: poll again until the deadline
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the explorer's server did not answer at {url} within {timeout:.0f} s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def summary_value(page, measure: str) -> str:
    """The 'this run' cell of ``measure`` in the page's summary table."""
    row = page.locator("tr", has=page.locator("td", has_text=measure)).first
    return row.locator("td").nth(1).inner_text().strip()


def wait_for_run(page, timeout: float = 60_000) -> None:
    """Wait until the page shows the five plots and a summary at the run's last day."""
    page.wait_for_function(
        "document.querySelectorAll('img.widget-image').length >= 5 && "
        "/day (\\d+) of \\1\\b/.test(document.body.innerText)",
        timeout=timeout,
    )


def plot_images(page) -> list[bytes]:
    """The PNG bytes of the page's plots, in order (their ``src`` are blob URLs, new at every redraw)."""
    data = page.evaluate(
        """async () => Promise.all([...document.querySelectorAll('img.widget-image')].map(async img => {
            const buf = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
            let s = ''; for (const b of buf) s += String.fromCharCode(b); return btoa(s);
        }))"""
    )
    import base64

    return [base64.b64decode(d) for d in data]


def _main(argv: list[str] | None = None) -> int:
    """Screenshots for the README: the page as it opens, and optionally a decade path with an ensemble."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m rareshock.explore", description="Screenshots of the explorer.")
    ap.add_argument("--screenshot", required=True, metavar="PNG", help="the page as it opens (april_2025_shock)")
    ap.add_argument("--ensemble", metavar="PNG", help="also: managed_derisking with 10 seeds and a $100bn budget")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with serve() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1420})
        page.goto(url)
        wait_for_run(page)
        page.wait_for_timeout(2000)  # solara's loading backdrop fades out after the first render
        page.screenshot(path=a.screenshot)  # the viewport: the page fits it (a full-page shot caught the backdrop)
        if a.ensemble:
            choose(page, "Scenario", "managed_derisking")
            choose(page, "Ensemble (seeds)", "10")
            choose(page, "Programme budget", "$100bn")
            page.get_by_role("button", name="Reset").click()
            page.wait_for_function("document.body.innerText.includes('over 10 seeds')", timeout=180_000)
            wait_for_run(page)
            page.wait_for_timeout(2000)
            page.screenshot(path=a.ensemble)
        browser.close()
    return 0


def set_slider(page, label: str, key: str, presses: int = 1) -> None:
    """Move the slider labelled ``label`` with the keyboard (``Home``, ``End``, ``ArrowLeft``, ...)."""
    slider = page.locator(".v-input", has=page.get_by_text(label, exact=True)).locator("[role=slider]")
    slider.focus()
    for _ in range(presses):
        slider.press(key)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the select labelled ``label``."""
    page.locator(".v-select", has=page.get_by_text(label, exact=True)).click()
    page.get_by_role("option", name=option, exact=True).click()


if __name__ == "__main__":
    raise SystemExit(_main())
