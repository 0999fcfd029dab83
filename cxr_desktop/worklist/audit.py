"""Who decided what, and when: every decision the reader takes is appended to a log in the review store's SQLite
file (table ``reader_log``), with the reader's name and the time, so that the exported worklist is a QA record
(``export.QA_COLUMNS``). The log only grows; the latest entry of a study is its current decision's."""

from __future__ import annotations

import getpass
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS reader_log (study_key TEXT NOT NULL, decision TEXT NOT NULL, "
    "reader TEXT NOT NULL, at REAL NOT NULL)"
)


class ReaderLogError(Exception):
    """The decision was saved, but who took it could not be recorded (the reason is the message)."""


@dataclass(frozen=True)
class Signed:
    reader: str
    at: float

    @property
    def iso(self) -> str:
        """The time in ISO 8601, UTC, to the second."""
        return datetime.fromtimestamp(self.at, timezone.utc).isoformat(timespec="seconds")


def os_reader() -> str:
    """The OS account's name, the reader's name until one is given ("" when the OS does not say)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:  # no such user entry, no login name
        log.warning("no OS account name: %s", exc)
        return ""


class ReaderLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False, isolation_level=None)
            db.execute(SCHEMA)
            db.execute("CREATE INDEX IF NOT EXISTS reader_log_key ON reader_log (study_key)")
            self._db = db
        return self._db

    def record(self, study_key: str, decision: str, reader: str, at: float | None = None) -> Signed:
        """Append one decision (``""``: undone) by ``reader``; ReaderLogError when it was not written."""
        signed = Signed(reader, time.time() if at is None else at)
        try:
            with self._lock:
                self._connect().execute(
                    "INSERT INTO reader_log VALUES (?, ?, ?, ?)", (study_key, decision, reader, signed.at)
                )
        except sqlite3.Error as exc:
            log.error("reader not recorded: %s", exc)
            raise ReaderLogError(f"who took the decision was not recorded ({exc})") from exc
        return signed

    def latest(self, study_keys: list[str]) -> dict[str, Signed]:
        """The latest entry of each study key that has one (a study whose decision was undone has none)."""
        found: dict[str, Signed] = {}
        try:
            with self._lock:
                db = self._connect()
                for start in range(0, len(study_keys), 500):  # SQLite's bound-parameter limit
                    chunk = study_keys[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    query = (
                        f"SELECT study_key, decision, reader, max(at) FROM reader_log WHERE study_key IN ({marks}) "
                        "GROUP BY study_key"
                    )
                    for key, decision, reader, at in db.execute(query, chunk):
                        if decision:
                            found[key] = Signed(reader, at)
        except sqlite3.Error as exc:
            log.error("reader log not read: %s", exc)
            raise ReaderLogError(f"who took the decisions could not be read ({exc})") from exc
        return found

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
