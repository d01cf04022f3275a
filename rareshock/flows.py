"""Material flows of a run through the chain, by region: separation → magnet making → end users → end use.

The record holds the flows each day (``flow_*`` columns, :class:`rareshock.model.records.MaterialFlows`):
oxide separated by region, oxide shipped from separators in one region to magnet makers in another, magnets
made by region, magnets shipped from makers in one region to end users in another, and magnets used by
sector and region. :func:`flow_table` sums them over the run (t per year); :func:`fig_flows` draws them as an
alluvial chart with matplotlib patches, one scale of tonnes for every column.

Mining is not modelled (separators produce oxide within their capacity), so the chart starts at separation.
Bands between separation and magnet making carry tonnes of oxide (NdPr, Dy/Tb, Sm); bands after it tonnes of
magnets (NdFeB, SmCo): a tonne of NdFeB holds roughly 0.3 t of oxide, so a maker's oxide bands are narrower
than its magnet bands. What a stage receives and what it passes on differ by its change of stock (and goods
in transit at the run's end), so a node is as tall as the larger of the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rareshock.model.codes import REGIONS
from rareshock.model.records import FLOW_SECTORS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from rareshock.outputs import FigureContext

STAGES = ("Separation", "Magnet making", "End users", "End use")
STAGE_UNITS = ("t oxide", "t magnets", "t magnets used", "t magnets used")
SECTOR_LABELS = {"auto": "Autos", "defense": "Defence", "industry": "Other industry"}
REGION_LABELS = {"CN": "China", "US": "US", "JP": "Japan", "EU": "EU", "IN": "India", "ROW": "Rest of world"}
REGION_COLOURS = {"CN": "#c0392b", "US": "#2e6fb7", "JP": "#8e44ad", "EU": "#f39c12", "IN": "#27ae60", "ROW": "#7f8c8d"}


@dataclass
class FlowTable:
    """Flows over a run, in t per year. ``links``: stage (0: separation → makers, 1: makers → end users'
    region, 2: end users' region → end use), source, target, tonnes. ``nodes``: stage, key, label, t in,
    t out (separation: oxide separated; makers: magnets made; end users and end uses: magnets used)."""

    links: pd.DataFrame
    nodes: pd.DataFrame
    days: int
    start: pd.Timestamp
    end: pd.Timestamp


def has_flows(df: pd.DataFrame) -> bool:
    return "flow_separated_cn_t" in df.columns and "date" in df.columns and len(df) > 0


def flow_table(df: pd.DataFrame) -> FlowTable:
    """Sum the run's daily flows into links and nodes (t per year; see :class:`FlowTable`)."""
    days = len(df)
    per_year = 365.25 / days
    tot = df[[c for c in df.columns if c.startswith("flow_")]].sum(axis=0) * per_year
    links = []
    for a in REGIONS:
        for b in REGIONS:
            links.append((0, a, b, tot[f"flow_oxide_{a.lower()}_to_{b.lower()}_t"]))
    for a in REGIONS:
        for b in REGIONS:
            links.append((1, a, b, tot[f"flow_magnets_{a.lower()}_to_{b.lower()}_t"]))
    for s in FLOW_SECTORS:
        for r in REGIONS:
            links.append((2, r, s, tot[f"flow_used_{s}_{r.lower()}_t"]))
    links = pd.DataFrame(links, columns=["stage", "source", "target", "tonnes"])
    links = links[links["tonnes"] > 0].reset_index(drop=True)
    own = {
        0: {r: tot[f"flow_separated_{r.lower()}_t"] for r in REGIONS},
        1: {r: tot[f"flow_magnets_made_{r.lower()}_t"] for r in REGIONS},
    }
    nodes = []
    for stage, keys in enumerate((REGIONS, REGIONS, REGIONS, FLOW_SECTORS)):
        for k in keys:
            t_in = links.loc[(links["stage"] == stage - 1) & (links["target"] == k), "tonnes"].sum()
            t_out = links.loc[(links["stage"] == stage) & (links["source"] == k), "tonnes"].sum()
            made = own.get(stage, {}).get(k, 0.0)
            label = SECTOR_LABELS.get(k) or REGION_LABELS.get(k, k)
            if max(t_in, t_out, made) > 0:
                nodes.append((stage, k, label, float(t_in), float(t_out), float(made)))
    nodes = pd.DataFrame(nodes, columns=["stage", "key", "label", "t_in", "t_out", "made"])
    dates = pd.to_datetime(df["date"])
    return FlowTable(links, nodes, days, dates.iloc[0], dates.iloc[-1])


def _band(ax: Any, x0: float, y0: float, x1: float, y1: float, w0: float, w1: float, colour: str) -> None:
    """A band from (x0, top y0, width w0) to (x1, top y1, width w1): two cubic Bézier edges."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path

    xm = (x0 + x1) / 2
    verts = [
        (x0, y0),
        (xm, y0),
        (xm, y1),
        (x1, y1),
        (x1, y1 - w1),
        (xm, y1 - w1),
        (xm, y0 - w0),
        (x0, y0 - w0),
        (x0, y0),
    ]
    codes = [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4, Path.LINETO, Path.CURVE4, Path.CURVE4, Path.CURVE4]
    codes.append(Path.CLOSEPOLY)
    ax.add_patch(PathPatch(Path(verts, codes), facecolor=colour, edgecolor="none", alpha=0.45, zorder=1))


def draw_alluvial(ax: Any, table: FlowTable, title: str) -> None:
    """The alluvial chart of ``table`` on ``ax``: four columns of nodes (:data:`STAGES`), every height in
    one scale of tonnes, nodes labelled with their tonnes per year."""
    from matplotlib.patches import Rectangle

    nodes, links = table.nodes, table.links
    size = nodes[["t_in", "t_out", "made"]].max(axis=1).to_numpy()
    heights = {(s, k): h for s, k, h in zip(nodes["stage"], nodes["key"], size)}
    column_total = nodes.assign(h=size).groupby("stage")["h"].sum()
    top = float(column_total.max()) if len(column_total) else 1.0
    gap = 0.05 * top
    min_h = 0.008 * top  # a sliver stays visible
    node_w = 0.06
    pos: dict[tuple[int, str], list[float]] = {}  # (stage, key) -> [top y, drawn height, next out y, next in y]
    drawn = {s: [max(heights[(s, k)], min_h) for k in nodes.loc[nodes["stage"] == s, "key"]] for s in range(4)}
    spans = {s: sum(d) + gap * max(len(d) - 1, 0) for s, d in drawn.items()}
    full = max(spans.values())
    for stage in range(len(STAGES)):
        y = (full + spans[stage]) / 2  # columns centred on the tallest
        for k, h in zip(nodes.loc[nodes["stage"] == stage, "key"], drawn[stage]):
            pos[(stage, k)] = [y, h, y, y]
            y -= h + gap
    colour = {**REGION_COLOURS, "auto": "0.35", "defense": "0.35", "industry": "0.35"}
    for _, link in links.iterrows():
        s, a, b, t = int(link["stage"]), link["source"], link["target"], float(link["tonnes"])
        pa, pb = pos[(s, a)], pos[(s + 1, b)]
        _band(ax, s + node_w, pa[2], s + 1, pb[3], t, t, colour[a])
        pa[2] -= t
        pb[3] -= t
    for (stage, key), (y, h, _, _) in pos.items():
        row = nodes[(nodes["stage"] == stage) & (nodes["key"] == key)].iloc[0]
        c = colour.get(key, "0.3") if stage < 3 else "0.3"
        ax.add_patch(Rectangle((stage, y - h), node_w, h, facecolor=c, edgecolor="none", zorder=2))
        value = (row["made"], row["made"], row["t_out"], row["t_in"])[stage]
        text = f"{row['label']}  {value:,.0f}"
        if stage == 0:
            ax.text(stage - 0.02, y - h / 2, text, ha="right", va="center", fontsize=8, zorder=3)
        else:
            ax.text(
                stage + node_w + 0.02,
                y - h / 2,
                text,
                ha="left",
                va="center",
                fontsize=8,
                zorder=3,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.75},
            )
    for stage, (name, unit) in enumerate(zip(STAGES, STAGE_UNITS)):
        ax.text(stage + node_w / 2, full + gap, f"{name}\n({unit}/yr)", ha="center", va="bottom", fontsize=8.5)
    ax.set_xlim(-0.55, len(STAGES) - 1 + 0.6)
    ax.set_ylim(0, full + gap * 4.5)
    ax.axis("off")
    ax.set_title(title, fontsize=10, loc="left")


def domestic_cn_left_out(table: FlowTable) -> FlowTable:
    """The flows with China's domestic chain (separated, made and used in China) left out: what crosses
    China's border or starts outside it."""
    links = table.links
    keep = ~(
        ((links["stage"] < 2) & (links["source"] == "CN") & (links["target"] == "CN"))
        | ((links["stage"] == 2) & (links["source"] == "CN"))
    )
    links = links[keep].reset_index(drop=True)
    nodes = []
    for _, n in table.nodes.iterrows():
        s, k = int(n["stage"]), n["key"]
        t_in = links.loc[(links["stage"] == s - 1) & (links["target"] == k), "tonnes"].sum()
        t_out = links.loc[(links["stage"] == s) & (links["source"] == k), "tonnes"].sum()
        made = n["made"] if k != "CN" else min(n["made"], t_out)
        if max(t_in, t_out, made) > 0:
            nodes.append((s, k, n["label"], float(t_in), float(t_out), float(made)))
    nodes = pd.DataFrame(nodes, columns=table.nodes.columns)
    return FlowTable(links, nodes, table.days, table.start, table.end)


def fig_flows(df: pd.DataFrame, ctx: FigureContext) -> Figure | None:
    """Two alluvial charts of the run's flows (t per year): all of them, and with China's domestic chain
    left out (so the flows that cross its border or start outside it can be read)."""
    from matplotlib.figure import Figure

    from rareshock.figstyle import caption

    if not has_flows(df):
        return None
    table = flow_table(df)
    if table.links.empty:
        return None
    outside = domestic_cn_left_out(table)
    panels = [(table, "All flows")]
    if not outside.links.empty:
        panels.append((outside, "China's domestic chain left out: exports from China and the chain outside it"))
    fig = Figure(figsize=(11, 4.6 * len(panels) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (t, title) in zip(axes, panels):
        draw_alluvial(ax, t, title)
    span = f"{table.start:%Y-%m-%d} to {table.end:%Y-%m-%d}"
    fig.suptitle(f"Material flows by region, tonnes per year (mean over {span})", fontsize=12, x=0.01, ha="left")
    axes[0].text(
        0.0,
        0.0,
        "Mining is not modelled: the chain starts at separation.\nOxide bands in t of oxide, magnet bands in t of"
        " magnets\n(1 t NdFeB holds ~0.3 t oxide). A node is as tall as the\nlarger of what it receives and passes on.",
        transform=axes[0].transAxes,
        ha="left",
        va="bottom",
        fontsize=7,
        color="0.35",
    )
    caption(fig, ctx.caption())
    return fig


def stage_totals(df: pd.DataFrame) -> dict[str, float]:
    """Tonnes over the run by stage, from the flow record: oxide separated and shipped to makers, magnets
    made, shipped and used (used by the tests' conservation checks and handy in notebooks)."""
    cols = df.columns
    sums = df[[c for c in cols if c.startswith("flow_")]].sum(axis=0)

    def total(prefix: str, suffix: str = "_t") -> float:
        return float(np.sum([v for c, v in sums.items() if c.startswith(prefix) and c.endswith(suffix)]))

    return {
        "oxide_separated": total("flow_separated_"),
        "oxide_shipped": total("flow_oxide_"),
        "magnets_made": total("flow_magnets_made_"),
        "magnets_shipped": float(np.sum([v for c, v in sums.items() if c.startswith("flow_magnets_") and "_to_" in c])),
        "magnets_used": total("flow_used_"),
    }
