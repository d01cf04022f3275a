"""The parameter table and the bibliography stay complete and traceable.

- every config field (``ScenarioConfig``, the ``chips`` section included) and every event kind and field is
  documented in ``docs/parameters.md``;
- every value marked **assumption** states a prior range a user can explore, every **calibrated** one its
  prior and where its posterior is;
- every source id cited in ``docs/parameters.md`` is defined in ``docs/sources.md``, and every source there
  is used; outcome observations are cited only as calibration targets, never for a parameter;
- the documents cite publications, never files outside the repository.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from rareshock.model.codes import REGIONS
from rareshock.model.config import Event, ScenarioConfig, defaults

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "docs" / "parameters.md"
SOURCES = ROOT / "docs" / "sources.md"
ODD = ROOT / "docs" / "ODD.md"

POSTERIOR = "experiments/calibration/april_2025.posterior.parquet"
CALIBRATED = {
    "automakers.US.buffer_days_mean": "loguniform [7, 120]",
    "automakers.US.buffer_days_cv": "uniform [0.2, 1.5]",
    "automakers.EU.buffer_days_mean": "loguniform [7, 120]",
    "automakers.IN.buffer_days_mean": "loguniform [7, 120]",
    "automakers.parts.chassis.cn_assembly_share": "uniform [0, 0.8]",
    "automakers.parts.traction.cn_assembly_share": "uniform [0, 0.5]",
    "licensing.cn.effort_reviewer_days": "loguniform [1, 30]",
    "licensing.cn.prep_days_max": "integer [5, 45]",
    "magnet_makers.target_stock_days": "uniform [10, 60]",
}

# a source id: lower-case words joined by hyphens, e.g. [reuters-2025-06-06-officials]
SOURCE_ID = re.compile(r"\[([a-z][a-z0-9]*(?:-[a-z0-9]+)+)\](?!\()")
DEFINED_ID = re.compile(r"^- \*\*\[([a-z][a-z0-9]*(?:-[a-z0-9]+)+)\]\*\*", re.M)
PRIOR = re.compile(r"prior[^|\[{]{0,40}[\[{][^\]}]+[\]}]")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def params() -> str:
    return _read(PARAMS)


@pytest.fixture(scope="module")
def sources() -> str:
    return _read(SOURCES)


# ------------------------------------------------------------------ walking the config schema
def _strip(ann: Any) -> Any:
    """The type under ``Annotated`` and ``X | None``."""
    while True:
        origin = typing.get_origin(ann)
        if origin is Annotated:
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(members) != 1:
                return ann
            ann = members[0]
        else:
            return ann


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _requirements(model: type[BaseModel], prefix: str, default: Any) -> list[tuple[str, re.Pattern]]:
    """(config path, pattern the document must match) for every leaf of ``model``.

    - a plain field: its dotted path;
    - a per-region table (a field named after a region whose type is a model): the literal path, or the
      generic one with ``R`` (or ``<region>``) for the region;
    - a table of models (``automakers.parts``, ``chips.firms``, ``investment.stages``) or a list of models
      (``investment.announced``): ``table.<key>.field`` / ``table[i].field`` for each field of the model;
    - a table of values (``shipping.sea_days``): ``table.KEY`` for each default key.
    """
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        ann = _strip(field.annotation)
        origin = typing.get_origin(ann)
        value = default.get(name) if isinstance(default, dict) else None
        if _is_model(ann):
            if name in REGIONS:
                generic = rf"{re.escape(prefix)}\.(?:R|<region>|<R>)"
                for leaf, _ in _requirements(ann, path, value):
                    tail = re.escape(leaf[len(path) :])
                    out.append((leaf, re.compile(rf"`(?:{re.escape(path)}|{generic}){tail}`")))
            else:
                out += _requirements(ann, path, value)
        elif origin is dict and _is_model(_strip(typing.get_args(ann)[1])):
            sub = _strip(typing.get_args(ann)[1])
            for f in sub.model_fields:
                out.append((f"{path}.<key>.{f}", re.compile(rf"`{re.escape(path)}\.<?[A-Za-z0-9_]+>?\.{f}`")))
        elif origin is list and _is_model(_strip(typing.get_args(ann)[0])):
            sub = _strip(typing.get_args(ann)[0])
            for f in sub.model_fields:
                out.append((f"{path}[i].{f}", re.compile(rf"`{re.escape(path)}\[[a-z0-9]+\]\.{f}`")))
        elif origin is dict and isinstance(value, dict) and value:
            for key in value:
                out.append((f"{path}.{key}", re.compile(rf"`{re.escape(path)}\.{re.escape(str(key))}`")))
        else:
            out.append((path, re.compile(rf"`{re.escape(path)}`")))
    return out


def _config_requirements() -> list[tuple[str, re.Pattern]]:
    return _requirements(ScenarioConfig, "", defaults())


def test_the_walk_finds_every_section():
    paths = [p for p, _ in _config_requirements()]
    assert len(paths) > 200
    for section in ("automakers", "sourcing", "licensing", "prices", "chips", "investment", "policy", "scenario"):
        assert any(p.startswith(section) for p in paths), section
    assert "automakers.parts.<key>.cn_assembly_share" in paths
    assert "automakers.US.buffer_days_mean" in paths
    assert "chips.bis.backlog_start" in paths


def test_every_config_field_is_documented(params):
    missing = [path for path, pattern in _config_requirements() if not pattern.search(params)]
    assert not missing, f"not in docs/parameters.md: {missing}"


def test_every_region_of_a_per_region_table_has_a_row(params):
    rows = {line.split("|")[1].strip().strip("`") for line in params.splitlines() if line.startswith("|")}
    for section, regions in (("automakers", ("US", "EU", "JP", "IN", "CN", "ROW")), ("defense", ("US", "EU", "JP"))):
        for r in regions:
            assert r in rows or f"{section}.{r}" in params, f"{section}: no row for {r}"


def test_every_event_kind_and_field_is_documented(params):
    for cls in typing.get_args(_strip(Event)):
        kind = typing.get_args(cls.model_fields["kind"].annotation)[0]
        rows = [line for line in params.splitlines() if line.startswith(f"| `{kind}`")]
        assert rows, f"event kind {kind} has no row in docs/parameters.md"
        text = " ".join(rows)
        for f in cls.model_fields:
            if f not in ("kind", "date", "source", "note"):
                assert f"`{f}`" in text, f"event {kind}: field {f} not documented"


# ------------------------------------------------------------------ assumptions, priors, calibration
def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")]


def test_every_assumption_states_a_prior_range(params):
    rows = [r for r in _table_rows(params) if "**assumption**" in r]
    assert len(rows) > 100
    bad = [r[:120] for r in rows if len(PRIOR.findall(r)) < r.count("**assumption**")]
    assert not bad, f"assumption without a prior range [low, high]: {bad}"


def test_assumptions_are_labelled_only_in_table_rows(params):
    """A bold label outside a table row could not be checked for its prior."""
    loose = [line[:100] for line in params.splitlines() if "**assumption**" in line and not line.startswith("|")]
    assert not loose, loose


def test_calibrated_parameters_state_their_prior_and_posterior(params):
    rows = [r for r in _table_rows(params) if "**calibrated**" in r]
    found = {}
    for r in rows:
        path = r.split("|")[1].strip().strip("`")
        assert POSTERIOR in r, f"{path}: no posterior file"
        found[path] = r
    assert set(found) == set(CALIBRATED), set(found) ^ set(CALIBRATED)
    for path, prior in CALIBRATED.items():
        assert prior in found[path], f"{path}: prior should be {prior}"


# ------------------------------------------------------------------ sources
def test_documents_cite_no_file_outside_the_repository():
    for doc in (PARAMS, SOURCES, ODD):
        text = _read(doc)
        for bad in ("/work/", "../shared", "calibration_facts.md", "research_shock", "research_record"):
            assert bad not in text, f"{doc.name} cites {bad!r}: cite the publication"


def test_every_source_cited_is_defined(params, sources):
    defined = DEFINED_ID.findall(sources)
    assert len(defined) == len(set(defined)), "a source id is defined twice"
    cited = set(SOURCE_ID.findall(params))
    assert cited, "docs/parameters.md cites no source id"
    assert not cited - set(defined), f"cited but not in docs/sources.md: {sorted(cited - set(defined))}"


def test_every_source_defined_is_used(params, sources):
    unused = set(DEFINED_ID.findall(sources)) - set(SOURCE_ID.findall(params))
    assert not unused, f"in docs/sources.md but cited nowhere in docs/parameters.md: {sorted(unused)}"


def test_outcome_observations_are_never_a_parameter_source(params, sources):
    head = "## Outcome observations (not used to set parameters)"
    assert head in sources
    outcome_ids = set(DEFINED_ID.findall(sources.split(head, 1)[1]))
    assert outcome_ids
    targets = "## 14. Calibration"
    assert targets in params
    before = params.split(targets, 1)[0]
    misused = outcome_ids & set(SOURCE_ID.findall(before))
    assert not misused, f"outcome observations cited as parameter sources: {sorted(misused)}"


def test_every_source_entry_says_what_is_taken(sources):
    entries = re.split(r"\n(?=- \*\*\[)", sources)
    for entry in entries:
        m = DEFINED_ID.match(entry)
        if m:
            assert "Takes:" in entry or "Target:" in entry, f"[{m.group(1)}]: say what the project takes from it"


def test_calibrated_defaults_are_the_published_posterior_medians():
    """A default that drifts from the published posterior (a recalibration not carried into the config, or a
    hand-edited default) is a silent change of every reference result: the two must agree to 3 significant
    figures (integers exactly)."""
    import math

    import pandas as pd

    from rareshock.calibration.report import weighted_quantile

    post = pd.read_parquet(ROOT / "experiments" / "calibration" / "april_2025.posterior.parquet")
    d = defaults()
    assert set(CALIBRATED) <= set(post.columns)
    for path in CALIBRATED:
        median = weighted_quantile(post[path].to_numpy(), post["weight"].to_numpy(), 0.5)
        value = d
        for key in path.split("."):
            value = value[key]
        digits = 2 - math.floor(math.log10(abs(median)))
        assert value == round(median, digits), f"{path}: default {value}, posterior median {median:.4g}"
