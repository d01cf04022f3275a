"""The shipped experiments and the one resolver that finds a config by name.

The folder ``experiments/`` of the repository is the package ``rareshock.experiments`` (``package-dir`` in
pyproject.toml): scenarios, sweeps, comparisons and calibrations (with their published
``*.posterior.parquet``) and ``validation/*.csv`` are package data. In a checkout (editable install) they are
the repository's files; in an installed wheel the same files in site-packages, found via
:mod:`importlib.resources`. :func:`locate` turns a bare name (``april_2025_shock``) into the shipped file;
anything that looks like a path (contains a ``/`` or ends in ``.toml``) is used as given.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path

# kind -> folder under experiments/ (the kind is also the TOML table that holds name and description)
KINDS = {"scenario": "scenarios", "sweep": "sweeps", "comparison": "comparisons", "calibration": "calibration"}
_CHECKOUT = Path(__file__).resolve().parents[1] / "experiments"


def experiments_dir() -> Path:
    """The folder of the shipped experiments (the checkout's ``experiments/`` or the installed package data)."""
    try:
        from importlib.resources import files

        folder = Path(str(files("rareshock.experiments")))
    except (ModuleNotFoundError, TypeError):  # a checkout that was never installed
        folder = _CHECKOUT
    return folder if folder.is_dir() else _CHECKOUT


def is_path(ref: str | os.PathLike) -> bool:
    """Whether ``ref`` is a path (used as given) rather than a name (looked up in the shipped experiments)."""
    text = os.fspath(ref)
    return isinstance(ref, os.PathLike) or "/" in text or os.sep in text or text.endswith(".toml")


def catalogue(kind: str) -> list[tuple[str, Path, str]]:
    """``(name, file, one-line description)`` of every shipped experiment of ``kind``, sorted by name."""
    found = []
    for path in sorted((experiments_dir() / KINDS[kind]).glob("*.toml")):
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get(kind)
        except (OSError, ValueError):
            continue
        if isinstance(table, dict):
            found.append((str(table.get("name", path.stem)), path, " ".join(str(table.get("description", "")).split())))
    return sorted(found, key=lambda t: t[0])


def locate(ref: str | os.PathLike, kind: str) -> Path:
    """The file of the ``kind`` experiment ``ref``: a path as given, or a shipped experiment by its name (its
    ``[kind] name`` or file name). An unknown name is a one-line ConfigError that lists close matches."""
    from rareshock.model.config import ConfigError

    if is_path(ref):
        return Path(ref)
    name = str(ref).strip()
    entries = catalogue(kind)
    for entry_name, path, _ in entries:
        if name in (entry_name, path.stem):
            return path
    if Path(name).is_file():  # a file in the current folder given without ./ or .toml
        return Path(name)
    names = [n for n, _, _ in entries]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"{KINDS[kind]}: {', '.join(names) or 'none'}"
    raise ConfigError(f"no {kind} named {name!r} ({hint}); see 'rareshock list', or give a path to a TOML file")


def is_installed_copy(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies in the shipped experiments of an installed package (not a checkout's), where
    rareshock never writes."""
    folder = experiments_dir().resolve()
    if folder == _CHECKOUT.resolve() and (_CHECKOUT.parent / "pyproject.toml").is_file():
        return False
    return Path(path).resolve().is_relative_to(folder)


def event_kinds() -> list[str]:
    """Every ``kind`` an ``[[events]]`` entry of a scenario can have."""
    from rareshock.model.chips_config import CHIP_EVENT_KINDS
    from rareshock.model.config import _EVENT_KINDS

    return sorted(set(_EVENT_KINDS) | set(CHIP_EVENT_KINDS))


def shipped_file(repo_relative: str | os.PathLike) -> Path:
    """A repository-relative data path (``experiments/validation/...``) as a file that exists: in a checkout
    the repository's, in an installed package the shipped copy."""
    path = Path(repo_relative)
    if path.is_absolute():
        return path
    here = _CHECKOUT.parent / path
    if here.exists() or not path.parts or path.parts[0] != "experiments":
        return here
    return experiments_dir().joinpath(*path.parts[1:])
