"""The shared figure conventions (rareshock.figstyle): events keyed by date, PNG and SVG written with the same
bytes for the same drawing, money and year axes readable."""

import datetime as dt

import pytest
from matplotlib.figure import Figure

from rareshock import figstyle


def _fig():
    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.plot([dt.date(2025, 1, 1), dt.date(2025, 12, 31)], [0, 2.5e9])
    return fig, ax


def test_event_marks_sort_label_and_add_the_lapse_of_a_suspension():
    events = [
        {"kind": "cn_suspension", "date": "2025-11-10", "until": "2026-11-10", "name": "No. 61"},
        {"kind": "marker", "date": "2025-04-04", "label": "MOFCOM No. 18"},
        {"kind": "cn_export_controls", "date": "2025-04-04", "note": "seven heavy rare earths"},
    ]
    marks = figstyle.event_marks(events)
    assert [d.isoformat() for d, _ in marks] == ["2025-04-04", "2025-04-04", "2025-11-10", "2026-11-10"]
    labels = [t for _, t in marks]
    assert "MOFCOM No. 18" in labels
    assert "seven heavy rare earths [cn_export_controls]" in labels
    assert labels[-1] == "No. 61 lapses (automatic)"
    assert figstyle.event_marks(events, start=dt.date(2025, 6, 1), end=dt.date(2025, 12, 31)) == [
        (dt.date(2025, 11, 10), "China suspends measures")
    ]


def test_figures_are_written_as_png_and_svg_with_the_same_bytes_each_time(tmp_path):
    fig, ax = _fig()
    figstyle.mark_events(ax, [(dt.date(2025, 4, 4), "controls")])
    figstyle.caption(fig, figstyle.caption_text("april_2025_shock", seed=1, commit="abcdef0123"))
    names = figstyle.save_figure(fig, tmp_path / "a.png")
    assert names == ["a.png", "a.svg"]
    first = [(tmp_path / n).read_bytes() for n in names]
    figstyle.save_figure(fig, tmp_path / "a.png")
    assert [(tmp_path / n).read_bytes() for n in names] == first
    svg = first[1].decode()
    assert "<dc:date>" not in svg and "commit abcdef0" in svg


def test_money_and_year_axes_print_dollars_in_billions_and_plain_years():
    fig, ax = _fig()
    figstyle.usd_axis(ax)
    fmt = ax.yaxis.get_major_formatter()
    assert fmt(1.5e9, 0) == "$1.5bn"
    assert fmt(250e9, 0) == "$250bn"
    figstyle.year_ticks(ax)
    assert ax.xaxis.get_major_formatter()(2030.0, 0) == "2030"


def test_caption_names_scenario_draws_seed_and_commit():
    assert (
        figstyle.caption_text("outlook", seed=7, draws=50, commit="0123456789")
        == "rareshock · scenario outlook · 50 posterior draws (seed 7) · commit 0123456"
    )
    assert figstyle.caption_text("baseline_2024", seed=1) == "rareshock · scenario baseline_2024 · seed 1"
    assert figstyle.commit_of({"git": {"commit": "0123456789", "dirty": True}}) == "0123456+dirty"


def test_a_flat_series_is_drawn_from_zero_and_annotated():
    fig, ax = _fig()
    assert figstyle.flat_note(ax, [100.0, 100.4, 100.8], "price")
    assert ax.get_ylim()[0] == 0
    assert not figstyle.flat_note(ax, [100.0, 150.0], "price")


def test_unknown_figure_format_is_refused():
    fig, _ = _fig()
    with pytest.raises(ValueError, match="png or svg"):
        figstyle.figure_bytes(fig, "jpg")


def test_every_event_kind_has_a_readable_name_in_figure_keys():
    from rareshock.resources import event_kinds

    assert set(event_kinds()) - set(figstyle.KIND_NAMES) == {"marker"}  # a marker carries its own label
    ev = {"kind": "cn_licensing_stance", "date": "2025-09-15", "p_incomplete": 0.45}
    assert figstyle.event_label(ev, detail=True) == "MOFCOM: licensing stance (p_incomplete 0.45)"
