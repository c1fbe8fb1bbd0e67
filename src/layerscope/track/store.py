"""The run store: one embedded SQLite file holding runs, scans over steps, scalars and alerts.

Layout (schema version 1, recorded in ``schema_version``):

* ``runs``: id, unique name, created (ISO time), meta (JSON);
* ``steps``: one row per (run, step) scan attempt: wall time, source (checkpoint path or
  ``None``), status (``ok``/``error``/``skipped``), error text, elapsed seconds, source
  fingerprint, model-level summary (JSON);
* ``layers``: per run, each matrix name once with kind, N, M and first-seen position;
* ``layer_metrics``: long format (run, metric, step, layer, value), clustered by
  ``(run_id, metric, step)`` so "alpha of every layer over steps" is one range scan;
* ``scalars``: user-logged values (train/test loss, accuracy) by (run, key, step);
* ``alerts``: level, message and evidence (JSON) by run and step.

The database runs in WAL mode with ``synchronous=NORMAL``: one writer and any number of
readers (each with its own :class:`RunStore`) work at the same time, and every logged
step is one transaction, so a killed writer loses at most the step it was writing.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pandas as pd

from layerscope.track._sql import (
    SCHEMA_VERSION,
    cell,
    connect,
    numeric_columns,
    scalar,
    to_json,
)
from layerscope.track.alert import Alert

if TYPE_CHECKING:
    import os

    from layerscope.results import ScanResult

DEFAULT_PATH = "layerscope-runs.db"
ALERT_LEVELS = ("info", "warning", "error")
# Scan columns kept in ``layers`` (identity) or not stored at all (derivable).
_LAYER_COLUMNS = ("name", "kind", "N", "M")
_NOT_STORED = frozenset({"layer_id", "param", "dtype", "num_slices", *_LAYER_COLUMNS})
_STEP_COLUMNS = ("step", "wall_time", "source", "status", "error", "elapsed_s", "fingerprint")

RunRef = int | str


class RunStore:
    """An SQLite run store (see the module docstring for the layout).

    Args:
        path: the database file (created with the schema when missing and ``create``).
        create: create the file when it does not exist; else raise ``ValueError``.
        busy_timeout: seconds to wait for another process's write lock.

    Raises:
        ValueError: the file is not a layerscope run store, or was written by a newer
            layerscope (schema version too high), or does not exist and not ``create``.

    One instance may be shared by threads (calls are serialised); separate processes
    and concurrent readers each open their own instance.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        create: bool = True,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ValueError(f"no layerscope run store at {self.path}")
        self._lock = threading.RLock()
        self._conn = connect(self.path, busy_timeout)

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        with self._lock:
            return int(self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the database's write lock up front."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def run_id(self, run: RunRef) -> int:
        """The id of a run given by name or id; ``ValueError`` when there is none."""
        return self._run_id(run)

    def run_name(self, run: RunRef) -> str:
        """The name of a run given by name or id; ``ValueError`` when there is none."""
        rows = self._query("SELECT name FROM runs WHERE id = ?", (self._run_id(run),))
        return str(rows[0][0])

    def _run_id(self, run: RunRef) -> int:
        column = "id" if isinstance(run, int) else "name"
        rows = self._query(f"SELECT id FROM runs WHERE {column} = ?", (run,))
        if not rows:
            raise ValueError(f"no run {run!r} in {self.path}")
        return int(rows[0][0])

    # ---- writing -------------------------------------------------------------------

    def start_run(self, name: str, meta: Mapping[str, Any] | None = None) -> int:
        """Create the run ``name`` and return its id; an existing name is resumed.

        When resuming, keys of ``meta`` are merged into the stored meta.
        """
        if not name:
            raise ValueError("run name must be a non-empty string")
        with self._write() as conn:
            row = conn.execute("SELECT id, meta FROM runs WHERE name = ?", (name,)).fetchone()
            merged = {**(json.loads(row[1]) if row else {}), **(meta or {})}
            if row is not None:
                conn.execute("UPDATE runs SET meta = ? WHERE id = ?", (to_json(merged), row[0]))
                return int(row[0])
            created = datetime.now(UTC).isoformat(timespec="seconds")
            cur = conn.execute(
                "INSERT INTO runs (name, created, meta) VALUES (?, ?, ?)",
                (name, created, to_json(merged)),
            )
            return int(cur.lastrowid or 0)

    def log_scan(
        self,
        run: RunRef,
        step: int,
        result: ScanResult,
        source: str | None = None,
        *,
        fingerprint: str | None = None,
    ) -> None:
        """Record a scan at ``step`` (replacing any earlier record of that step), atomically."""
        run_id = self._run_id(run)
        frame = result.layers
        metrics = [c for c in frame.columns if c not in _NOT_STORED]
        elapsed = cell(result.meta.get("elapsed_s"))
        with self._write() as conn:
            self._replace_step(conn, run_id, step)
            conn.execute(
                "INSERT INTO steps VALUES (?, ?, ?, ?, 'ok', NULL, ?, ?, ?)",
                (run_id, step, time.time(), source, elapsed, fingerprint, to_json(result.summary)),
            )
            ids = self._layer_ids(conn, run_id, frame)
            rows = [
                (run_id, metric, step, ids[str(name)], value)
                for metric in metrics
                for name, raw in zip(frame["name"], frame[metric], strict=True)
                if (value := cell(raw)) is not None
            ]
            conn.executemany("INSERT OR REPLACE INTO layer_metrics VALUES (?, ?, ?, ?, ?)", rows)

    @staticmethod
    def _replace_step(conn: sqlite3.Connection, run_id: int, step: int) -> None:
        exists = conn.execute(
            "SELECT 1 FROM steps WHERE run_id = ? AND step = ?", (run_id, step)
        ).fetchone()
        if exists:
            conn.execute("DELETE FROM steps WHERE run_id = ? AND step = ?", (run_id, step))
            conn.execute("DELETE FROM layer_metrics WHERE run_id = ? AND step = ?", (run_id, step))

    @staticmethod
    def _layer_ids(conn: sqlite3.Connection, run_id: int, frame: pd.DataFrame) -> dict[str, int]:
        count = conn.execute("SELECT COUNT(*) FROM layers WHERE run_id = ?", (run_id,))
        (known,) = count.fetchone()
        conn.executemany(
            "INSERT OR IGNORE INTO layers (run_id, name, kind, N, M, position)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (run_id, str(name), cell(kind), cell(n), cell(m), known + i)
                for i, (name, kind, n, m) in enumerate(
                    zip(*(frame[c] for c in _LAYER_COLUMNS), strict=True)
                )
            ],
        )
        rows = conn.execute("SELECT name, id FROM layers WHERE run_id = ?", (run_id,))
        return {str(name): int(layer_id) for name, layer_id in rows}

    def _log_status(
        self,
        run: RunRef,
        step: int,
        status: str,
        message: str,
        source: str | None,
        fingerprint: str | None = None,
    ) -> None:
        run_id = self._run_id(run)
        with self._write() as conn:
            self._replace_step(conn, run_id, step)
            conn.execute(
                "INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, NULL, ?, NULL)",
                (run_id, step, time.time(), source, status, message, fingerprint),
            )

    def log_error(
        self,
        run: RunRef,
        step: int,
        message: str,
        source: str | None = None,
        *,
        fingerprint: str | None = None,
    ) -> None:
        """Record that the scan of ``step`` failed (replacing any earlier record of the step)."""
        self._log_status(run, step, "error", message, source, fingerprint)

    def log_skip(self, run: RunRef, step: int, reason: str, source: str | None = None) -> None:
        """Record that a scan due at ``step`` was skipped and why (busy, time budget)."""
        self._log_status(run, step, "skipped", reason, source)

    def log_scalars(self, run: RunRef, step: int, **values: Any) -> None:
        """Record numbers (losses, accuracies...) at ``step``; a key re-logged replaces."""
        rows = [(key, scalar(key, value)) for key, value in values.items()]
        if not rows:
            return
        run_id = self._run_id(run)
        now = time.time()
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO scalars VALUES (?, ?, ?, ?, ?)",
                [(run_id, key, step, None if math.isnan(v) else v, now) for key, v in rows],
            )

    def log_alert(
        self,
        run: RunRef,
        step: int,
        level: str,
        message: str,
        evidence: Mapping[str, Any] | None = None,
        *,
        evidence_step: int | None = None,
    ) -> None:
        """Record an alert (``level`` one of info, warning, error) raised at ``step``, with
        JSON-ready evidence dating from ``evidence_step`` (kept in the evidence JSON)."""
        if level not in ALERT_LEVELS:
            raise ValueError(f"alert level must be one of {ALERT_LEVELS}, got {level!r}")
        run_id = self._run_id(run)
        body = {**(evidence or {})}
        if evidence_step is not None:
            body["evidence_step"] = int(evidence_step)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO alerts (run_id, step, wall_time, level, message, evidence)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, step, time.time(), level, message, to_json(body)),
            )

    # ---- reading -------------------------------------------------------------------

    def runs(self) -> pd.DataFrame:
        """One row per run: id, name, created, meta (dict), num_steps, last_step, num_alerts."""
        rows = self._query(
            "SELECT r.id, r.name, r.created, r.meta,"
            " (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.id),"
            " (SELECT MAX(step) FROM steps s WHERE s.run_id = r.id),"
            " (SELECT COUNT(*) FROM alerts a WHERE a.run_id = r.id)"
            " FROM runs r ORDER BY r.id"
        )
        columns = ["id", "name", "created", "meta", "num_steps", "last_step", "num_alerts"]
        frame = pd.DataFrame.from_records(rows, columns=columns)
        frame["meta"] = [json.loads(m) for m in frame["meta"]]
        return frame

    def run_meta(self, run: RunRef) -> dict[str, Any]:
        """The meta dict stored with a run."""
        rows = self._query("SELECT meta FROM runs WHERE id = ?", (self._run_id(run),))
        meta: dict[str, Any] = json.loads(rows[0][0])
        return meta

    def steps(self, run: RunRef) -> pd.DataFrame:
        """One row per recorded step: step, wall_time, source, status, error, elapsed_s,
        fingerprint, then the model-level summary (mean alpha, counts...) as columns."""
        rows = self._query(
            f"SELECT {', '.join(_STEP_COLUMNS)}, summary FROM steps WHERE run_id = ? ORDER BY step",
            (self._run_id(run),),
        )
        frame = pd.DataFrame.from_records([r[:-1] for r in rows], columns=list(_STEP_COLUMNS))
        summary = pd.DataFrame.from_records([json.loads(r[-1] or "{}") for r in rows])
        return pd.concat([frame, summary], axis=1) if len(summary.columns) else frame

    def has_step(self, run: RunRef, step: int, source: str | None = None) -> bool:
        """Whether ``step`` was scanned successfully (from ``source``, when given)."""
        rows = self._query(
            "SELECT source FROM steps WHERE run_id = ? AND step = ? AND status = 'ok'",
            (self._run_id(run), step),
        )
        return bool(rows) and (source is None or rows[0][0] == source)

    def layer_history(
        self, run: RunRef, metrics: Sequence[str] | None = ("alpha",), *, since: int | None = None
    ) -> pd.DataFrame:
        """Per-layer metrics over steps: columns step, name, then one column per metric.

        Args:
            run: the run's name or id.
            metrics: scan columns to return (``None``: every stored metric).
            since: only steps after this one (for readers polling a live run).

        Rows are ordered by step, then by the layer's position in the model.
        """
        if isinstance(metrics, str):
            metrics = (metrics,)
        sql = (
            "SELECT m.step, l.name, l.position, m.metric, m.value FROM layer_metrics m"
            " JOIN layers l ON l.id = m.layer_id WHERE m.run_id = ?"
        )
        params: list[Any] = [self._run_id(run)]
        if metrics is not None:
            sql += f" AND m.metric IN ({', '.join('?' * len(metrics))})"
            params += list(metrics)
        if since is not None:
            sql += " AND m.step > ?"
            params.append(since)
        long = pd.DataFrame.from_records(
            self._query(sql, params), columns=["step", "name", "position", "metric", "value"]
        )
        wide = long.pivot(index=["step", "position", "name"], columns="metric", values="value")
        wanted = list(metrics) if metrics is not None else sorted(wide.columns)
        wide = wide.reindex(columns=wanted).sort_index().reset_index().drop(columns="position")
        wide.columns.name = None
        return numeric_columns(wide, wanted)

    def scalar_history(self, run: RunRef) -> pd.DataFrame:
        """User-logged scalars: one row per step, one column per key (NaN where not logged)."""
        rows = self._query(
            "SELECT step, key, value FROM scalars WHERE run_id = ?", (self._run_id(run),)
        )
        long = pd.DataFrame.from_records(rows, columns=["step", "key", "value"])
        wide = long.pivot(index="step", columns="key", values="value").sort_index()
        wide.columns.name = None
        return wide.reset_index().astype({c: "float64" for c in wide.columns})

    def alerts(self, run: RunRef) -> pd.DataFrame:
        """Alerts of a run in order: step (raised), evidence_step (when its evidence began;
        the raised step when not recorded), wall_time, level, message, evidence (dict)."""
        rows = self._query(
            "SELECT step, wall_time, level, message, evidence FROM alerts"
            " WHERE run_id = ? ORDER BY step, id",
            (self._run_id(run),),
        )
        frame = pd.DataFrame.from_records(
            rows, columns=["step", "wall_time", "level", "message", "evidence"]
        )
        frame["evidence"] = [json.loads(e) for e in frame["evidence"]]
        since = [
            e.get("evidence_step", s) for e, s in zip(frame["evidence"], frame["step"], strict=True)
        ]
        frame.insert(1, "evidence_step", pd.Series(since, dtype="int64"))
        return frame


__all__ = ["ALERT_LEVELS", "DEFAULT_PATH", "SCHEMA_VERSION", "Alert", "RunStore"]
