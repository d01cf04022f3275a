"""Branching from a state: save a model at the end of a day, continue it later, possibly into another future.

``rareshock run CONFIG --until DATE --save-state FILE`` steps the model through DATE (that day's step
included) and writes its complete state to FILE; ``rareshock run CONFIG --from-state FILE`` continues it to
CONFIG's end and writes the usual run files, whose time series covers the whole period (the trunk up to
DATE and the future after it). See docs/reliability.md, "Branching from a state".

The state file
--------------
``MAGIC`` (one line), then one line of JSON (the header), then the payload: the pickled model. The header
holds the format version, the rareshock version and git commit that wrote it, the branch date and day
index, the seed, the full resolved config of the trunk, the fingerprint of what a continuing config must
match (:func:`trunk_part`), and the payload's length and SHA-256. A file that does not start with
``MAGIC``, has another format version, or whose payload is shorter, longer or different from what the
header says is refused with one line (exit 2). Pickle runs code when it loads: load only state files you
made (the SHA-256 guards against truncation and corruption, not against a file crafted to harm).

NumPy views survive the round trip: the model keeps views of its arrays (flat views of the stock, slices
for groups of edges), and plain pickle would turn each into a copy, breaking the sharing and the
continuation. :class:`_Pickler` writes a view as (its base array, byte offset, shape, strides, dtype), so
after loading every view is again a view of the same (single) base array. It writes sets sorted, so the
same model gives the same file in any process (Python's string hashes differ between processes).

What must match
---------------
A config may continue a state made with another config if everything up to and including the branch date D
is the same: every field except ``scenario.name``, ``description``, ``end``, ``seed``, ``reproduce``,
``posterior_draws``, ``calibration`` and ``extends``, and the events dated on or before D (the same
events in the same order). Events dated after D may differ: they replace the saved agenda's events dated
after D. Reactions the trunk scheduled (retaliation under ``policy``) stay on the agenda. ``scenario.end``
may be any date on or after D. The run continues the state's random stream, so its seed is the state's.
With these rules, a state saved at D and continued with config C gives byte-identical results to an
unbroken run of C with the state's seed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from rareshock.model.config import ConfigError, ScenarioConfig

MAGIC = b"RARESHOCK-STATE\n"
FORMAT = 1
# scenario fields that do not act on the model's days up to the branch date
FREE_SCENARIO_FIELDS = ("name", "description", "end", "seed", "reproduce", "posterior_draws", "calibration", "extends")
HEADER_MAX = 4 * 1024 * 1024


class StateError(ConfigError):
    """A state file that cannot be used, or a config that cannot continue it: bad input, exit 2, one line."""


# --------------------------------------------------------------------------------------------------
# Pickling that keeps NumPy views as views
# --------------------------------------------------------------------------------------------------
def _view(base: np.ndarray, offset: int, shape: tuple, strides: tuple, dtype: np.dtype, writeable: bool):
    v = np.ndarray(shape, dtype=dtype, buffer=base, offset=offset, strides=strides)
    if not writeable:
        v.flags.writeable = False
    return v


class _Pickler(pickle._Pickler):  # the Python pickler: it asks reducer_override about sets too
    def reducer_override(self, obj: Any) -> Any:
        if type(obj) in (set, frozenset):  # sorted, so the file does not depend on the string hash seed
            return type(obj), (sorted(obj, key=repr),)
        if type(obj) is np.ndarray and isinstance(obj.base, np.ndarray):
            base = obj.base  # the array that owns the memory (after loading, one backed by the pickle's buffer)
            while isinstance(base.base, np.ndarray):
                base = base.base
            if type(base) is np.ndarray and base.flags.c_contiguous:
                offset = obj.__array_interface__["data"][0] - base.__array_interface__["data"][0]
                return _view, (base, offset, obj.shape, obj.strides, obj.dtype, bool(obj.flags.writeable))
            raise pickle.PicklingError(
                f"an array of shape {obj.shape} is a view of a {type(base).__name__} that cannot be saved as such"
            )
        return NotImplemented

    def _save_picklebuffer(self, obj: pickle.PickleBuffer) -> None:
        """In-band buffers through ``save``, so its memo check runs: the Python pickler's own
        ``save_picklebuffer`` memoizes ``m.tobytes()`` directly, and every empty buffer gives the one shared
        ``b""`` object, so a model holding two empty arrays failed its memo assertion."""
        with obj.raw() as m:
            if not m.contiguous:
                raise pickle.PicklingError("PickleBuffer can not be pickled when pointing to a non-contiguous buffer")
            self.save(m.tobytes() if m.readonly else bytearray(m.tobytes()))

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[pickle.PickleBuffer] = _save_picklebuffer


def dumps_model(model: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(model)
    return buf.getvalue()


def loads_model(data: bytes) -> Any:
    return pickle.loads(data)


# --------------------------------------------------------------------------------------------------
# What must match
# --------------------------------------------------------------------------------------------------
def trunk_part(config: dict, date: dt.date) -> dict:
    """The part of a resolved config (``model_dump(mode="json")``) that acts on the days up to ``date``."""
    out = {k: v for k, v in config.items() if k not in ("scenario", "events")}
    out["scenario"] = {k: v for k, v in config["scenario"].items() if k not in FREE_SCENARIO_FIELDS}
    out["events"] = [e for e in config["events"] if dt.date.fromisoformat(e["date"]) <= date]
    return out


def fingerprint(config: dict, date: dt.date) -> str:
    from rareshock.outputs import config_hash

    return config_hash(trunk_part(config, date))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:45] + "..." + text[-12:]


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first place where ``a`` (saved) and ``b`` (new) differ, as one phrase, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            p = f"{path}.{k}" if path else str(k)
            if k not in b:
                return f"{p} is only in the state's config"
            if k not in a:
                return f"{p} is only in the new config"
            found = first_difference(a[k], b[k], p)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        if len(a) != len(b):
            return f"{path}: {len(a)} entries in the state's config, {len(b)} in the new one"
        return None
    if a != b or type(a) is not type(b):
        return f"{path}: state has {_short(a)}, new config has {_short(b)}"
    return None


def check_continuation(header: dict, new: ScenarioConfig, seed: int | None) -> None:
    """Raise :class:`StateError` (one line) unless ``new`` may continue the state described by ``header``."""
    date = dt.date.fromisoformat(header["date"])
    saved = header["config"]
    new_json = new.model_dump(mode="json")
    a, b = trunk_part(saved, date), trunk_part(new_json, date)
    diff = first_difference(
        {k: v for k, v in a.items() if k != "events"}, {k: v for k, v in b.items() if k != "events"}
    )
    if diff:
        raise StateError(f"--from-state: the config differs from the state's up to {date}: {diff}")
    ea, eb = a["events"], b["events"]
    for i, (x, y) in enumerate(zip(ea, eb)):
        d = first_difference(x, y, f"events[{i}]")
        if d:
            raise StateError(
                f"--from-state: the events dated on or before {date} differ: {d} (only events dated after {date} "
                f"may change)"
            )
    if len(ea) != len(eb):
        more = "state's" if len(ea) > len(eb) else "new"
        extra = (ea if len(ea) > len(eb) else eb)[min(len(ea), len(eb))]
        raise StateError(
            f"--from-state: the events dated on or before {date} differ: the {more} config has "
            f"{max(len(ea), len(eb)) - min(len(ea), len(eb))} more ({extra['date']} {extra['kind']} first); only "
            f"events dated after {date} may change"
        )
    if new.scenario.end < date:
        raise StateError(
            f"scenario.end: {new.scenario.end} is before the state's date {date}; give an end on or after it"
        )
    if seed is not None and seed != header["seed"]:
        raise StateError(
            f"--seed: the state continues the random stream of seed {header['seed']}; give that seed or none "
            f"(got {seed})"
        )


# --------------------------------------------------------------------------------------------------
# Stepping, forking
# --------------------------------------------------------------------------------------------------
def day_of(cfg: ScenarioConfig, date: dt.date, flag: str = "--until") -> int:
    """The day index of ``date`` in ``cfg``'s run, or a one-line error."""
    s = cfg.scenario
    if not s.start <= date <= s.end:
        raise StateError(f"{flag}: {date} is outside the scenario ({s.start} to {s.end})")
    return (date - s.start).days


def run_until(cfg: ScenarioConfig, seed: int, date: dt.date):
    """Build the model and step it through ``date`` (that day's step included)."""
    from rareshock.model.model import RareShockModel

    day = day_of(cfg, date)
    model = RareShockModel(cfg, rng=seed)
    while model.day <= day:
        model.step()
    return model


def step_to_end(model) -> None:
    while model.day < model.n_days:
        model.step()


def branch(model, new: ScenarioConfig) -> None:
    """Turn a model stepped through day D of its config into one of ``new`` (checked to match up to D):
    its calendar and record run to ``new``'s end, and its agenda holds ``new``'s events dated after D
    (in place of the old ones) plus the reactions the trunk scheduled."""
    from rareshock.agents.government import actor
    from rareshock.model.calendar import Calendar

    old = model.cfg
    start = model.calendar.start
    past_day = model.day - 1  # the last day stepped
    dated = {id(ev) for ev in old.events}
    govs = model.governments
    for gov in (govs.cn, govs.us):
        reactions = [(d, ev) for d, ev in gov.events[gov.next :] if id(ev) not in dated]
        future = [
            ((ev.date - start).days, ev)
            for ev in new.events
            if (ev.date - start).days > past_day and actor(ev.kind) == gov.country
        ]
        gov.events = gov.events[: gov.next] + future
        for d, ev in reactions:  # where an unbroken run puts them: after the dated events of their day
            gov.schedule(d, ev)
    model.cfg = new
    if new.scenario.end != old.scenario.end:
        model.calendar = Calendar(new.scenario.start, new.scenario.end)
        n = model.calendar.n_days
        records = model.records
        data = np.zeros((n, records.data.shape[1]))
        keep = min(n, records.data.shape[0])
        data[:keep] = records.data[:keep]
        records.data = data
        model.n_days = n
        model.investment.programme.horizon_days = n
    model.running = model.day < model.n_days


# --------------------------------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------------------------------
def _version() -> str | None:
    from rareshock.outputs import package_versions

    return package_versions(("rareshock",))["rareshock"]


def state_bytes(model, seed: int) -> bytes:
    from rareshock.outputs import git_provenance, to_json

    payload = dumps_model(model)
    date = model.calendar.date(model.day - 1)
    config = model.cfg.model_dump(mode="json")
    header = {
        "format": FORMAT,
        "rareshock": _version(),
        "git": git_provenance(),
        "date": date.isoformat(),
        "day": model.day - 1,
        "seed": int(seed),
        "scenario": model.cfg.scenario.name,
        "fingerprint": fingerprint(config, date),
        "config": config,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "note": "pickle: load only state files you made",
    }
    line = json.dumps(json.loads(to_json(header)), sort_keys=True, separators=(",", ":")).encode("utf-8")
    return MAGIC + line + b"\n" + payload


def _shown(path: str | os.PathLike) -> str:
    from rareshock.outputs import show_path

    return show_path(path)


def read_header(path: str | os.PathLike) -> tuple[dict, int] | None:
    """The header of a rareshock state file and where its payload starts, or None if the file is not one
    (no magic line, or a header that is not JSON). Raises OSError if it cannot be read."""
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            return None
        line = fh.readline(HEADER_MAX)
    if not line.endswith(b"\n"):
        return None
    try:
        header = json.loads(line)
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    return header, len(MAGIC) + len(line)


def load_state(path: str | os.PathLike) -> tuple[dict, Any]:
    """The header and the model saved in ``path``, or a one-line :class:`StateError`."""
    shown = _shown(path)
    text = os.fspath(path)
    if not text.strip() or "\x00" in text:
        raise StateError("--from-state: give the path of a state file written by --save-state")
    p = Path(text)
    try:
        if p.is_dir():
            raise StateError(f"--from-state {shown}: is a folder, expected a state file written by --save-state")
        found = read_header(p)
        if found is None:
            raise StateError(f"--from-state {shown}: not a rareshock state file (write one with --save-state)")
        header, at = found
        fmt = header.get("format")
        if fmt != FORMAT:
            raise StateError(
                f"--from-state {shown}: state format {fmt!r}, this rareshock reads format {FORMAT} "
                f"(written by rareshock {header.get('rareshock')}); save the state again"
            )
        need = ("date", "day", "seed", "config", "payload_bytes", "payload_sha256")
        missing = [k for k in need if k not in header]
        if missing:
            raise StateError(f"--from-state {shown}: the header lacks {missing[0]!r}; not a complete state file")
        with open(p, "rb") as fh:
            fh.seek(at)
            payload = fh.read()
    except FileNotFoundError:
        raise StateError(f"--from-state {shown}: no such file") from None
    except OSError as err:
        raise StateError(f"--from-state {shown}: cannot read it ({err.strerror or err})") from None
    if len(payload) != header["payload_bytes"]:
        raise StateError(
            f"--from-state {shown}: truncated or extended ({len(payload):,} bytes of state, the header says "
            f"{header['payload_bytes']:,})"
        )
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise StateError(f"--from-state {shown}: damaged (its SHA-256 differs from the header's)")
    if header.get("rareshock") != _version():
        raise StateError(
            f"--from-state {shown}: written by rareshock {header.get('rareshock')}, this is {_version()}; "
            f"save the state again"
        )
    try:
        model = loads_model(payload)
    except Exception as err:  # a payload that matches its checksum but does not load (another code version)
        raise StateError(f"--from-state {shown}: cannot load the state ({type(err).__name__}: {err})") from None
    return header, model


def check_target(path: str | os.PathLike) -> Path:
    """Where ``--save-state`` may write: a new file, or a state file rareshock wrote (it is replaced). A
    one-line StateError otherwise; nothing is created."""
    text = os.fspath(path)
    if not text.strip():
        raise StateError("--save-state: empty path; give the file to write the state to")
    if "\x00" in text:
        raise StateError("--save-state: the path contains a NUL character")
    p = Path(os.path.abspath(text))
    shown = _shown(text)
    if len(os.fsencode(p.name)) > 200:
        raise StateError(f"--save-state {shown}: the file name is too long (at most 200 bytes)")
    if not p.parent.is_dir():
        raise StateError(f"--save-state {shown}: the folder {_shown(p.parent)} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise StateError(f"--save-state {shown}: cannot write in {_shown(p.parent)} (permission denied)")
    if os.path.lexists(p):
        if p.is_symlink():
            raise StateError(f"--save-state {shown}: is a symbolic link; rareshock does not write through it")
        if not p.is_file():
            raise StateError(f"--save-state {shown}: exists and is not a file")
        try:
            ours = read_header(p) is not None
        except OSError as err:
            raise StateError(f"--save-state {shown}: cannot read the existing file ({err.strerror or err})") from None
        if not ours:
            raise StateError(
                f"--save-state {shown}: exists and is not a rareshock state file; rareshock never overwrites "
                f"it: choose another name"
            )
    return p


def save_state(model, seed: int, path: str | os.PathLike) -> tuple[Path, int, bool]:
    """Write the state atomically to ``path`` (checked again: a foreign file that appeared meanwhile is
    never replaced). Returns the path, the file's size and whether it replaced an earlier state."""
    from rareshock.outputs import atomic_write_bytes

    p = check_target(path)
    replaced = os.path.lexists(p)
    data = state_bytes(model, seed)
    atomic_write_bytes(p, data)
    return p, len(data), replaced
