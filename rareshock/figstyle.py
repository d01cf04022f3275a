"""One look for every figure rareshock draws: policy events marked and keyed, a caption line naming what was
run, money in $bn, years on decade axes, and each figure written as PNG and SVG.

Every figure function in rareshock (``outputs``, ``record``, ``compare``, ``sweeps.analysis``,
``calibration``) goes through these helpers, so a figure in a paper carries the same conventions:

- :func:`event_marks` turns a scenario's ``[[events]]`` (config dicts or validated event objects) into dated,
  short labels, including the day a suspension lapses by itself;
- :func:`mark_events` draws them as thin vertical lines numbered along the top of an axis, and
  :func:`event_key` lists the numbers with their dates and labels in a panel below the chart;
- :func:`caption` writes one line at the foot of the figure: scenario, seed or posterior draws, commit;
- :func:`usd_axis`, :func:`share_axis`, :func:`count_axis` and :func:`date_axis` format axes;
- :func:`save_figure` writes ``name.png`` and ``name.svg`` with no timestamps inside, atomically, so
  regenerating a figure from the same data gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

EVENT_COLOUR = "0.45"
MAX_LABEL = 90  # characters of an event label in a key


# --------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------
def _get(ev: Any, key: str, default: Any = None) -> Any:
    return ev.get(key, default) if isinstance(ev, dict) else getattr(ev, key, default)


def _short(text: str, n: int = MAX_LABEL) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _fields(ev: Any) -> str:
    """The fields an event sets besides its kind, date, source and note ("firms a, b; p_approve_civil 0.5")."""
    skip = {"kind", "date", "source", "note", "label"}
    if isinstance(ev, dict):
        items = {k: v for k, v in ev.items() if k not in skip}
    elif hasattr(ev, "model_dump"):
        items = ev.model_dump(exclude=skip, exclude_defaults=True)
    else:
        return ""
    shown = []
    for k, v in items.items():
        if v in ([], {}, None):
            continue
        shown.append(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}")
    return "; ".join(shown)


# readable names of the event kinds, for a note-less event ("China: export controls", not cn_export_controls)
KIND_NAMES = {
    "cn_export_controls": "China: export controls",
    "cn_lift_controls": "China lifts controls",
    "cn_licensing_stance": "MOFCOM: licensing stance",
    "cn_fast_track": "MOFCOM: fast track",
    "cn_hire_reviewers": "MOFCOM hires reviewers",
    "cn_general_licence": "China: general licences",
    "cn_suspension": "China suspends measures",
    "cn_export_quota": "China: export quota",
    "cn_customs_hold": "China: customs hold",
    "cn_technology_controls": "China: technology controls",
    "cn_production_quota": "China: production quota",
    "cn_state_stockpile": "China: state stockpile",
    "cn_chip_import_ban": "China bans US chips",
    "us_chip_licence_requirement": "US: chip licence requirement",
    "us_chip_licences_granted": "US grants chip licences",
    "us_entity_list": "US: Entity List",
    "us_entity_list_removal": "US: Entity List removal",
    "us_is_informed": "US: is-informed letters",
    "us_bis_stance": "BIS: licensing stance",
    "us_chip_rollback": "US: chip-control rollback",
    "us_suspension": "US suspends measures",
    "us_stockpile_programme": "US: stockpile programme",
    "us_defense_sourcing_rule": "US: defence sourcing rule",
    "deal": "Deal",
}


def event_label(ev: Any, detail: bool = False) -> str:
    """A short label: a marker's text; else the event's note with its kind; else the kind's readable name
    (:data:`KIND_NAMES`; a deal: its terms). With ``detail``, a note-less event's name is followed by the
    fields it sets ("MOFCOM: licensing stance (p_approve_civil 0.5)")."""
    kind = _get(ev, "kind")
    if kind == "marker":
        return _short(_get(ev, "label") or "marker")
    note = _get(ev, "note") or _get(ev, "label")
    if note:
        return _short(f"{note} [{kind}]")
    if kind == "deal":
        terms = _get(ev, "terms") or []
        return _short(f"deal: {', '.join(str(_get(t, 'kind')) for t in terms)}")
    name = KIND_NAMES.get(str(kind), str(kind).replace("_", " "))
    fields = _fields(ev) if detail else ""
    return _short(f"{name} ({fields})" if fields else name)


def event_marks(
    events: Iterable[Any], start: dt.date | None = None, end: dt.date | None = None, detail: bool = False
) -> list[tuple[dt.date, str]]:
    """(date, label) for each event of a scenario (config dicts or event objects) between ``start`` and
    ``end`` (inclusive; ``None`` is open), with the day each suspension lapses by itself, sorted by date.
    Events on the same day with the same label are listed once. ``detail``: see :func:`event_label`."""
    out: set[tuple[dt.date, str]] = set()
    for ev in events:
        day = _get(ev, "date")
        if day is None:
            continue
        day = dt.date.fromisoformat(str(day)) if not isinstance(day, dt.date) else day
        out.add((day, event_label(ev, detail)))
        if _get(ev, "kind") in ("cn_suspension", "us_suspension") and _get(ev, "until"):
            until = _get(ev, "until")
            until = dt.date.fromisoformat(str(until)) if not isinstance(until, dt.date) else until
            out.add((until, _short(f"{_get(ev, 'name')} lapses (automatic)")))
    marks = sorted(out)
    return [(d, t) for d, t in marks if (start is None or d >= start) and (end is None or d <= end)]


def mark_events(
    ax: Any,
    marks: Sequence[tuple[dt.date, str]],
    first: int = 1,
    x_of: Any = None,
    colour: str = EVENT_COLOUR,
    colours: Sequence[str] | None = None,
) -> None:
    """Thin vertical lines at each mark's date, numbered (``first``, ``first+1``, ...) along the top of ``ax``.
    ``x_of`` maps a date to the axis' x value (default: the date as a pandas Timestamp; pass e.g.
    ``lambda d: (d - start).days`` for an axis in days). Numbers of marks closer than 2% of the axis width are
    staggered down so they stay legible. ``colours`` (one per mark) overrides ``colour``, e.g. to colour
    each mark by the scenario it belongs to."""
    import pandas as pd

    if not marks:
        return
    to_x = x_of or (lambda d: pd.Timestamp(d))
    lo, hi = ax.get_xlim()
    span = hi - lo if hi > lo else 1.0
    last_x, row = None, 0
    for i, (day, _) in enumerate(marks, start=first):
        x = to_x(day)
        xf = ax.xaxis.convert_units(x) if not isinstance(x, int | float) else x
        try:
            xf = float(xf)
        except (TypeError, ValueError):
            continue
        if xf < lo or xf > hi:
            continue
        row = row + 1 if last_x is not None and (xf - last_x) < 0.02 * span else 0
        last_x = xf
        c = colours[i - first] if colours is not None else colour
        ax.axvline(x, color=c, lw=0.7, ls=(0, (4, 2)), zorder=0.5)
        ax.annotate(
            str(i),
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -3 - 9 * (row % 4)),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=7,
            color="0.25" if colours is None else c,
            fontweight="bold",
        )
    ax.set_xlim(lo, hi)


def event_key(
    ax: Any,
    marks: Sequence[tuple[dt.date, str]],
    first: int = 1,
    columns: int = 1,
    colours: Sequence[str] | None = None,
    title: str = "Policy events (numbered dashed lines above)",
) -> None:
    """Turn ``ax`` into a key listing the numbered events ("3  2025-04-04  No. 18 controls ..."); with
    ``colours`` (one per mark) each line in its mark's colour."""
    ax.axis("off")
    if not marks:
        return
    # a column holds as many 7-point monospace characters (0.6 em wide) as its share of the key (about 74%
    # of the figure, beside the legends) allows, so a long label is cut with an ellipsis rather than running
    # into the next column
    width = int(ax.figure.get_figwidth() * 72 * 0.74 / columns / (0.6 * 7)) - 3
    lines = [f"{i:>2}  {d.isoformat()}  {t}" for i, (d, t) in enumerate(marks, start=first)]
    lines = [line if len(line) <= width else line[: width - 1] + "…" for line in lines]
    per = -(-len(lines) // columns)
    for c in range(columns):
        chunk = lines[c * per : (c + 1) * per]
        if colours is None:
            ax.text(c / columns, 1.0, "\n".join(chunk), va="top", ha="left", fontsize=7, family="monospace")
            continue
        for j, line in enumerate(chunk):  # one line every 9 points, as the joined text above
            ax.annotate(
                line,
                (c / columns, 1.0),
                xycoords="axes fraction",
                xytext=(0, -9.1 * j),
                textcoords="offset points",
                va="top",
                ha="left",
                fontsize=7,
                family="monospace",
                color=colours[c * per + j],
            )
    ax.set_title(title, fontsize=8.5, loc="left")


def key_height(n_marks: int, columns: int = 1) -> float:
    """Inches a key of ``n_marks`` events needs."""
    return 0.35 + 0.13 * -(-n_marks // max(columns, 1)) if n_marks else 0.0


# --------------------------------------------------------------------------------------------------
# Caption
# --------------------------------------------------------------------------------------------------
def caption_text(
    scenario: str | None = None,
    seed: int | None = None,
    draws: int | None = None,
    commit: str | None = None,
    extra: str | None = None,
) -> str:
    """ "rareshock · scenario april_2025_shock · 100 posterior draws (seed 1) · commit 3b57ac7"."""
    parts = ["rareshock"]
    if scenario:
        parts.append(f"scenario {scenario}")
    if draws and draws > 1:
        parts.append(f"{draws} posterior draws" + (f" (seed {seed})" if seed is not None else ""))
    elif seed is not None:
        parts.append(f"seed {seed}")
    if extra:
        parts.append(extra)
    if commit:  # the short hash, keeping a "+dirty" mark (commit_of)
        head, plus, rest = commit.partition("+")
        parts.append(f"commit {head[:7]}{plus}{rest}")
    return " · ".join(parts)


def caption(fig: Any, text: str, reserve: bool = True) -> None:
    """Write ``text`` as one small grey line at the bottom left of ``fig``. With ``reserve`` (the default) and
    a figure in constrained layout, the layout keeps a strip at the foot free for the line, so axis labels
    and keys never run into it."""
    fig.text(0.005, 0.002, text, ha="left", va="bottom", fontsize=7, color="0.35")
    engine = fig.get_layout_engine() if reserve else None
    if engine is not None and hasattr(engine, "set") and "rect" in engine.get():
        strip = 0.17 / fig.get_figheight()  # inches of one 7-point line, as a fraction of the height
        engine.set(rect=(0, strip, 1, 1 - strip))


def commit_of(manifest_or_config: dict | None) -> str | None:
    """The commit recorded in a manifest (``git.commit``), with ``+dirty`` if the tree was not clean."""
    if not manifest_or_config:
        return None
    git = manifest_or_config.get("git") or {}
    commit = git.get("commit")
    if not commit:
        return None
    return commit[:7] + ("+dirty" if git.get("dirty") else "")


# --------------------------------------------------------------------------------------------------
# Axes
# --------------------------------------------------------------------------------------------------
def usd_axis(ax: Any, axis: str = "y", scale: float = 1e9, unit: str = "bn") -> None:
    """Format an axis holding US dollars as "$1.5bn" (``scale`` 1e9) or "$250m" (``scale=1e6, unit="m"``)."""
    from matplotlib.ticker import FuncFormatter

    def fmt(v: float, _pos: Any) -> str:
        x = v / scale
        text = f"{x:,.0f}" if abs(x) >= 10 or x == int(x) else f"{x:,.1f}"
        return f"${text}{unit}" if v >= 0 else f"−${text.lstrip('-')}{unit}"

    getattr(ax, f"{axis}axis").set_major_formatter(FuncFormatter(fmt))


def share_axis(ax: Any, axis: str = "y") -> None:
    """Format an axis of shares (0–1) as percentages."""
    from matplotlib.ticker import PercentFormatter

    getattr(ax, f"{axis}axis").set_major_formatter(PercentFormatter(1.0, decimals=0))


def count_axis(ax: Any, axis: str = "y") -> None:
    """Integer ticks with thousands separators, for counts (plants, applications, runs)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    a = getattr(ax, f"{axis}axis")
    a.set_major_locator(MaxNLocator(integer=True))
    a.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))


def plain_axis(ax: Any, axis: str = "y") -> None:
    """Plain numbers with thousands separators and no offset or scientific notation ("12,500", "0.25")."""
    from matplotlib.ticker import FuncFormatter

    def fmt(v: float, _p: Any) -> str:
        return f"{v:,.0f}" if abs(v) >= 100 or v == int(v) else f"{v:,.2g}"

    getattr(ax, f"{axis}axis").set_major_formatter(FuncFormatter(fmt))


def year_ticks(ax: Any, axis: str = "x") -> None:
    """Ticks of a year axis (numbers such as 2030) printed as years, not "2,030"."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    a = getattr(ax, f"{axis}axis")
    a.set_major_locator(MaxNLocator(integer=True))
    a.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.0f}"))


def metric_kind(name: str) -> str:
    """What a metric's number is, from its name: "year" (``year_*``: a calendar year), "usd" (``*_usd``,
    ``*_usd_cum``), "usd_kg" (a price), "share" (``*share*``, ``*localisation*``, ``*shortfall``), "day"
    (``first_*_day``: a day of the run) or "number"."""
    base = name.rsplit(".", 1)[-1]
    if base.startswith("year_"):
        return "year"
    if base.endswith("_usd_kg"):
        return "usd_kg"
    if base.endswith("_usd") or base.endswith("_usd_cum") or base.endswith("_budget_usd"):
        return "usd"
    if "share" in base or "localisation" in base or base.endswith("shortfall"):
        return "share"
    if base.startswith("first_") and base.endswith("_day"):
        return "day"
    return "number"


def format_value(name: str, v: float, never: str = "never") -> str:
    """One value of metric ``name`` as text: "2031", "$4.7bn", "$250m", "12%", "1,250", "0.35"; NaN (or
    +inf: a first time that never came) as ``never``."""
    import math

    if v is None or not math.isfinite(float(v)):
        return never if (v is None or math.isnan(float(v)) or float(v) > 0) else "−inf"
    v = float(v)
    kind = metric_kind(name)
    if kind == "year":
        return f"{v:.0f}"
    if kind == "usd":
        a = abs(v)
        if a == 0:
            return "$0"
        if a >= 1e9:
            x = v / 1e9
            return f"${x:,.0f}bn" if abs(x) >= 10 or x == int(x) else f"${x:,.1f}bn"
        return f"${v / 1e6:,.0f}m" if a >= 1e6 else f"${v:,.0f}"
    if kind == "share":
        return f"{100 * v:.0f}%" if abs(v) >= 0.1 or v == 0 else f"{100 * v:.1f}%"
    if abs(v) >= 100 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:.3g}"


def value_axis(ax: Any, name: str, axis: str = "y") -> None:
    """Format an axis (or a colour bar's axis) holding metric ``name`` by its kind (:func:`metric_kind`):
    years plain, dollars as $bn, shares as percent, other numbers without offset or scientific notation."""
    kind = metric_kind(name)
    if kind == "year":
        year_ticks(ax, axis)
    elif kind == "usd":
        usd_axis(ax, axis)
    elif kind == "share":
        share_axis(ax, axis)
    else:
        plain_axis(ax, axis)


def parameter_text(path: str, v: Any) -> str:
    """A swept parameter's value as a tick label: "$10bn" for a dollar amount, "7" not "7.0", "taken"/"not
    taken" for ``policy.deal``, "yes"/"no" for other true/false values."""
    import numpy as np

    if isinstance(v, bool | np.bool_):
        if path.endswith(".deal"):
            return "taken" if v else "not taken"
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    base = path.rsplit(".", 1)[-1]
    if base.endswith("_usd"):
        return format_value("x_usd", float(v))
    v = float(v)
    return f"{v:,.0f}" if v == int(v) and abs(v) < 1e15 else f"{v:.4g}"


def date_axis(ax: Any, years: float | None = None) -> None:
    """Concise date ticks; for runs over ~3 years and more, year ticks (``years`` is the span in years)."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, DateFormatter, YearLocator

    if years is not None and years >= 3:
        ax.xaxis.set_major_locator(YearLocator())
        ax.xaxis.set_major_formatter(DateFormatter("%Y"))
        return
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def flat_note(ax: Any, values: Any, what: str, rel: float = 0.02) -> bool:
    """If ``values`` hardly move (range below ``rel`` of their level), put the y axis from zero and say so on
    the chart, so a 0.8% drift is not blown up to full height. Returns True if the note was written."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return False
    level = max(abs(v).max(), 1e-12)
    if (v.max() - v.min()) / level >= rel:
        return False
    ax.set_ylim(0, level * 1.15)
    ax.text(
        0.99,
        0.04,
        f"{what} varies by less than {rel:.0%} over the run",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=7.5,
        color="0.3",
    )
    return True


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
FIGURE_DPI = 150


def figure_bytes(fig: Any, fmt: str, **kw: Any) -> bytes:
    """The figure as PNG or SVG bytes with no time stamp or software string inside, and SVG element ids
    fixed (``svg.hashsalt``), so the same drawing gives the same bytes."""
    import matplotlib

    buf = io.BytesIO()
    if fmt == "png":
        fig.savefig(buf, format="png", dpi=FIGURE_DPI, metadata={"Software": None}, **kw)
    elif fmt == "svg":
        with matplotlib.rc_context({"svg.hashsalt": "rareshock", "svg.fonttype": "none"}):
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, **kw)
    else:
        raise ValueError(f"figure format {fmt!r}: use png or svg")
    return buf.getvalue()


def save_figure(fig: Any, path: str | Path, svg: bool = True, **kw: Any) -> list[str]:
    """Write ``fig`` to ``path`` (``.png``) and, with ``svg``, the same drawing beside it as ``.svg``,
    atomically; returns the file names written."""
    from rareshock.outputs import atomic_write_bytes

    path = Path(path).with_suffix(".png")
    atomic_write_bytes(path, figure_bytes(fig, "png", **kw))
    names = [path.name]
    if svg:
        atomic_write_bytes(path.with_suffix(".svg"), figure_bytes(fig, "svg", **kw))
        names.append(path.with_suffix(".svg").name)
    return names
