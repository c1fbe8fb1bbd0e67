"""The resumable result store of a survey: one SQLite row per finished model.

Each model is written in its own transaction as soon as it finishes, so an interrupted
survey (Ctrl-C, a killed job, a power cut) loses at most the models that were in
flight, and the file is always a valid database (SQLite commits are atomic). A rerun
reads the keys already present and scans only the rest; the key covers the file's
identity and the scan options (:func:`layerscope.survey.sources.job_key`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from layerscope.survey.worker import ModelRecord

STORE_SCHEMA = 1

_CREATE = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    finished TEXT NOT NULL,
    summary TEXT NOT NULL,
    layers TEXT NOT NULL
);
"""


class SurveyStore:
    """Finished models keyed by job key; ``":memory:"`` for a survey that is not resumed."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_CREATE)
            found = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: not a survey store ({exc})") from exc
        if found is None:
            with self._db:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(STORE_SCHEMA),))
        elif found[0] != str(STORE_SCHEMA):
            raise ValueError(
                f"{self.path}: survey store schema {found[0]}, expected {STORE_SCHEMA}"
            )

    def keys(self, statuses: Iterable[str] = ("ok", "error")) -> set[str]:
        """Keys of the stored models whose status is one of ``statuses``."""
        wanted = tuple(statuses)
        marks = ",".join("?" * len(wanted))
        query = f"SELECT key FROM models WHERE status IN ({marks})"
        return {k for (k,) in self._db.execute(query, wanted)}

    def put(self, record: ModelRecord) -> None:
        """Store one model, replacing an older row with the same key (one transaction)."""
        row = (
            record.key,
            str(record.summary.get("status", "")),
            datetime.now(UTC).isoformat(timespec="seconds"),
            json.dumps(record.summary, default=str),
            json.dumps(record.layers, default=str),
        )
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?)", row)

    def get(self, keys: Iterable[str]) -> list[ModelRecord]:
        """The stored records of ``keys`` that exist, in the order of ``keys``."""
        found: dict[str, ModelRecord] = {}
        wanted = list(keys)
        for start in range(0, len(wanted), 500):  # SQLite caps bound parameters
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, summary, layers FROM models WHERE key IN ({marks})"
            for key, summary, layers in self._db.execute(query, chunk):
                found[key] = ModelRecord(key, _loads(summary), _loads(layers))
        return [found[k] for k in wanted if k in found]

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> SurveyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _loads(text: str) -> Any:
    return json.loads(text)
