"""Review decisions in SQLite (WAL), keyed by study key, durable as soon as ``set`` returns."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from platformdirs import user_data_dir

from cxr_desktop.worklist.rows import Review

DECISIONS = ("", "confirmed", "dismissed")


def default_store_path() -> Path:
    return Path(user_data_dir("cxr-desktop", appauthor=False)) / "reviews.sqlite3"


class ReviewStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a decision survives power loss once acknowledged
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS reviews (study_key TEXT PRIMARY KEY, decision TEXT NOT NULL, "
            "comment TEXT NOT NULL, updated REAL NOT NULL)"
        )

    def set(self, study_key: str, decision: str, comment: str = "") -> None:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        with self._lock:
            self._db.execute(
                "INSERT INTO reviews VALUES (?, ?, ?, ?) ON CONFLICT(study_key) DO UPDATE SET "
                "decision=excluded.decision, comment=excluded.comment, updated=excluded.updated",
                (study_key, decision, comment, time.time()),
            )

    def get(self, study_key: str) -> Review:
        with self._lock:
            row = self._db.execute("SELECT decision, comment FROM reviews WHERE study_key=?", (study_key,)).fetchone()
        return Review(*row) if row else Review()

    def get_many(self, study_keys: list[str]) -> dict[str, Review]:
        """Reviews of the given keys that have one, in one query (the GUI thread asks for a batch of rows)."""
        found: dict[str, Review] = {}
        with self._lock:
            for start in range(0, len(study_keys), 500):  # SQLite's bound-parameter limit
                chunk = study_keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT study_key, decision, comment FROM reviews WHERE study_key IN ({marks})"
                found.update({k: Review(d, c) for k, d, c in self._db.execute(query, chunk)})
        return found

    def all(self) -> dict[str, Review]:
        with self._lock:
            return {k: Review(d, c) for k, d, c in self._db.execute("SELECT study_key, decision, comment FROM reviews")}

    def close(self) -> None:
        with self._lock:
            self._db.close()
