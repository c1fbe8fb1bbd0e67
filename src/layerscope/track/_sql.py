"""The run store's SQL schema and its conversions between pandas/numpy values and SQLite."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1

SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " created TEXT NOT NULL, meta TEXT NOT NULL DEFAULT '{}')",
    "CREATE TABLE steps (run_id INTEGER NOT NULL REFERENCES runs(id), step INTEGER NOT NULL,"
    " wall_time REAL NOT NULL, source TEXT, status TEXT NOT NULL, error TEXT, elapsed_s REAL,"
    " fingerprint TEXT, summary TEXT, PRIMARY KEY (run_id, step)) WITHOUT ROWID",
    "CREATE TABLE layers (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),"
    " name TEXT NOT NULL, kind TEXT, N INTEGER, M INTEGER, position INTEGER NOT NULL,"
    " UNIQUE (run_id, name))",
    # Clustered by (run, metric, step): one metric of every layer over steps is a range scan.
    "CREATE TABLE layer_metrics (run_id INTEGER NOT NULL, metric TEXT NOT NULL,"
    " step INTEGER NOT NULL, layer_id INTEGER NOT NULL, value,"
    " PRIMARY KEY (run_id, metric, step, layer_id)) WITHOUT ROWID",
    "CREATE TABLE scalars (run_id INTEGER NOT NULL, key TEXT NOT NULL, step INTEGER NOT NULL,"
    " value REAL, wall_time REAL NOT NULL, PRIMARY KEY (run_id, key, step)) WITHOUT ROWID",
    "CREATE TABLE alerts (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),"
    " step INTEGER NOT NULL, wall_time REAL NOT NULL, level TEXT NOT NULL,"
    " message TEXT NOT NULL, evidence TEXT NOT NULL DEFAULT '{}')",
    "CREATE INDEX alerts_by_run ON alerts (run_id, step)",
)


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Open a run store in WAL mode, creating the schema in an empty file.

    Raises:
        ValueError: not an SQLite file, an SQLite file of something else, or a newer schema.
    """
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        _check_schema(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        msg = f"{path} is not a layerscope run store (not an SQLite database: {exc})"
        raise ValueError(msg) from exc
    except ValueError:
        conn.close()
        raise
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    if not _tables(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not _tables(conn):  # another process may have created it meanwhile
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    if "schema_version" not in _tables(conn):
        raise ValueError(f"{path} is an SQLite database but not a layerscope run store")
    version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    if version is None or version > SCHEMA_VERSION:
        raise ValueError(
            f"{path} has run store schema version {version}; this layerscope reads "
            f"version {SCHEMA_VERSION} (upgrade layerscope)"
        )


def cell(value: Any) -> int | float | str | None:
    """A DataFrame cell as an SQLite value; missing values (None, NaN, NA) become ``None``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_ | int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return None if pd.isna(value) else str(value)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays made plain and non-finite floats made ``None``."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    converted = cell(value)
    if isinstance(converted, float) and not math.isfinite(converted):
        return None
    return converted


def to_json(value: Mapping[str, Any]) -> str:
    """A mapping as strict JSON text (see :func:`jsonable`)."""
    return json.dumps(jsonable(value), allow_nan=False)


def scalar(key: str, value: Any) -> float:
    """A user-logged scalar (number, numpy scalar, one-element tensor) as a float."""
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        msg = f"scalar {key!r} must be a number, got {type(value).__name__}"
        raise ValueError(msg) from exc


def numeric_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Columns whose values are all numbers become float64; text columns stay as they are."""
    for col in columns:
        values = frame[col]
        if values.map(lambda v: v is None or isinstance(v, int | float)).all():
            frame[col] = values.astype("float64")
    return frame
