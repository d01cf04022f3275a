"""SQL over a result folder with DuckDB (the ``notebook`` extra): ``rareshock.sql.connect(folder)``.

>>> con = rareshock.sql.connect("results/runs/my_sweep")
>>> con.sql("SELECT licensing__cn__reviewers, avg(us_auto_idle_plant_days) FROM runs GROUP BY 1").df()

Each table of the folder becomes a view: ``runs`` (a sweep's runs.parquet, all its part files), ``design``,
``timeseries`` (a run's daily series, or a sweep's aggregated one), ``draws`` (one row per posterior draw)
and ``monthly``; the views of tables the folder lacks are not created. The dotted column names of the
files (``licensing.cn.reviewers``, ``cn_licences.approved``) become names with ``__`` for each dot, as in
``rareshock.run(..., licensing__cn__reviewers=40)``, so SQL needs no quoting. Reading the files directly
keeps the dotted names, which SQL must double-quote: ``SELECT "licensing.cn.reviewers" FROM
read_parquet('runs.parquet/*.parquet')``. The views read the files when queried; nothing is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

TABLES = {
    "runs": "runs.parquet",
    "design": "design.parquet",
    "timeseries": "timeseries.parquet",
    "draws": "draws.parquet",
    "monthly": "monthly.parquet",
}
"""View name -> file (or folder of part files) of a rareshock result folder."""


def sql_name(column: str) -> str:
    """A column name without dots: ``licensing.cn.reviewers`` -> ``licensing__cn__reviewers``."""
    return column.replace(".", "__")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(folder: str | os.PathLike, con: Any = None) -> Any:
    """A DuckDB connection (``con``, or a new in-memory one) with a view for each table of the rareshock
    result ``folder`` (a run, a posterior run or a sweep; see the module). Raises FileNotFoundError if the
    folder has none of them, ImportError (saying what to install) without DuckDB."""
    try:
        import duckdb
    except ImportError:
        raise ImportError(
            "rareshock.sql needs DuckDB: pip install 'rareshock[notebook]' (or pip install duckdb)"
        ) from None
    folder = Path(folder)
    found = {}
    for view, file in TABLES.items():
        path = folder / file
        if path.is_dir() and any(path.glob("part-*.parquet")):
            found[view] = path / "part-*.parquet"  # the finished parts (not a worker's hidden temporary file)
        elif path.is_file():
            found[view] = path
    if not found:
        raise FileNotFoundError(f"{folder}: no rareshock results here (expected one of {', '.join(TABLES.values())})")
    con = duckdb.connect() if con is None else con
    for view, path in found.items():
        source = "read_parquet('" + str(path.resolve()).replace("'", "''") + "')"
        columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        names = [sql_name(c) for c in columns]
        clash = {n for n in names if names.count(n) > 1}
        if clash:
            raise ValueError(f"{path}: columns {sorted(clash)} clash once dots become '__'")
        select = ", ".join(_quote(c) if c == n else f"{_quote(c)} AS {_quote(n)}" for c, n in zip(columns, names))
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT {select} FROM {source}")
    return con
