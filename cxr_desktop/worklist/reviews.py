"""Review decisions in SQLite (WAL), durable as soon as ``set`` returns.

A review is keyed by patient + study + instance (see :class:`ReviewId`), and remembers the instance and a
hash of the patient, so that another patient's file reusing an instance UID neither inherits the decision
nor passes unseen. The store never stops the app: a damaged file is moved aside (kept) and a new one started,
a file that cannot be written is opened read-only, a lock held by another program costs at most
``timeout_s``; every such fault is a message for the user (``notice``) or a :class:`ReviewStoreError`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from platformdirs import user_data_dir

from cxr_desktop.worklist.rows import Review, ReviewId

log = logging.getLogger(__name__)

DECISIONS = ("", "confirmed", "dismissed")
LOCK_TIMEOUT_S = 0.1  # the GUI thread saves: a lock held elsewhere must not freeze it
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS reviews (study_key TEXT PRIMARY KEY, decision TEXT NOT NULL, "
    "comment TEXT NOT NULL, updated REAL NOT NULL, instance_key TEXT NOT NULL DEFAULT '', "
    "patient_hash TEXT NOT NULL DEFAULT '')"
)
ADDED_COLUMNS = ("instance_key", "patient_hash")
# when each study was first seen (wall clock): the waiting time and Max-wait priority survive a restart
ARRIVALS = "CREATE TABLE IF NOT EXISTS arrivals (study_key TEXT PRIMARY KEY, arrived REAL NOT NULL)"
UPSERT = (
    "INSERT INTO reviews VALUES (?, coalesce(?, ''), coalesce(?, ''), ?, ?, ?) ON CONFLICT(study_key) DO UPDATE "
    "SET decision=coalesce(?, decision), comment=coalesce(?, comment), updated=excluded.updated, "
    "instance_key=excluded.instance_key, patient_hash=excluded.patient_hash"
)


class ReviewStoreError(Exception):
    """A decision was not saved, or reviews could not be read; the message says why, for the user."""


def default_store_path() -> Path:
    return Path(user_data_dir("cxr-desktop", appauthor=False)) / "reviews.sqlite3"


class ReviewStore:
    def __init__(self, path: str | Path | None = None, timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.path = Path(path) if path else default_store_path()
        self.timeout_s = timeout_s
        self.read_only = False
        self.notice = ""  # what the user must be told about the store (shown as a banner)
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # one thread notices (and repairs) a deleted store, not two
        # what this session wrote, so that a store deleted or replaced while the app runs gets it again
        self._journal: list[tuple[ReviewId, str | None, str | None]] = []
        self._arrived: dict[str, float] = {}
        self._pending_notice = ""
        self._db = self._open()
        self._file = _file_id(self.path)  # the file opened: another one under the path is noticed (``poll``)
        self._version = self._data_version()

    # -- opening -------------------------------------------------------------------------------------

    def _connect(self, read_only: bool = False) -> sqlite3.Connection:
        if read_only:
            uri = self.path.absolute().as_uri() + "?mode=ro"
            return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=self.timeout_s)
        return sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=self.timeout_s)

    def _open_writable(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            check = db.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise sqlite3.DatabaseError(f"integrity check failed: {'; '.join(str(r[0]) for r in check[:3])}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a decision survives power loss once acknowledged
            db.execute(SCHEMA)
            db.execute(ARRIVALS)
            self._migrate(db)
            db.execute("CREATE INDEX IF NOT EXISTS reviews_instance ON reviews (instance_key)")
            db.execute("PRAGMA user_version=2")  # a write: a store that cannot be written fails here
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            return self._open_writable()
        except sqlite3.OperationalError as exc:  # read-only, locked, I/O: the file may be fine, keep it
            locked = "locked" in str(exc).lower() or "busy" in str(exc).lower()
            return self._open_read_only("it is locked by another program" if locked else str(exc))
        except sqlite3.DatabaseError as exc:  # not a database, malformed, failed integrity check
            return self._start_over(exc)
        except OSError as exc:
            return self._open_read_only(exc.strerror or str(exc))

    def _open_read_only(self, reason: str) -> sqlite3.Connection:
        log.warning("review store opened read-only: %s", reason)
        self.read_only = True
        self.notice = (
            f"The review store {self.path} cannot be written ({reason}). Reviews are shown read-only; "
            "new decisions and comments cannot be saved."
        )
        try:
            db = self._connect(read_only=True)
            db.execute("SELECT count(*) FROM reviews").fetchone()
            return db
        except sqlite3.Error as exc:
            log.warning("review store unreadable too (%s): using an empty read-only store", exc)
            self.notice += f" Earlier reviews cannot be read either ({exc})."
            return sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)

    def _start_over(self, exc: sqlite3.DatabaseError) -> sqlite3.Connection:
        """A damaged store: keep it beside under a new name, start a new one with what can be read from it."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        log.error("review store %s is damaged (%s); kept as %s", self.path, exc, kept.name)
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(self.path) + suffix)
            if source.exists():
                os.replace(source, str(kept) + suffix)
        db = self._open_writable()
        recovered, stopped = _salvage(kept, db)
        self.notice = (
            f"The review store was damaged ({exc}). It was kept as {kept} and a new store was started; "
            f"{recovered} decisions were recovered from it"
            + (f" before an unreadable part ({stopped})." if stopped else ".")
        )
        return db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Stores written before reviews carried instance and patient: add the columns (their reviews are
        then found by instance key, see ``load``)."""
        columns = {row[1] for row in db.execute("PRAGMA table_info(reviews)")}
        for name in ADDED_COLUMNS:
            if name not in columns:
                db.execute(f"ALTER TABLE reviews ADD COLUMN {name} TEXT NOT NULL DEFAULT ''")

    # -- use -----------------------------------------------------------------------------------------

    def set(self, study_key: str | ReviewId, decision: str, comment: str = "") -> None:
        """Store one decision and its comment durably; raises ReviewStoreError (with the reason) when it was
        not saved."""
        self.update(study_key, decision, comment)

    def update(self, study_key: str | ReviewId, decision: str | None = None, comment: str | None = None) -> Review:
        """Store the fields given (None: left as stored, e.g. another window's decision when this one saves a
        comment) durably in one statement; returns the review as stored now. ReviewStoreError when not saved."""
        if decision is not None and decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        rid = study_key if isinstance(study_key, ReviewId) else ReviewId(study_key)
        if self.read_only:
            raise ReviewStoreError("not saved: the review store is read-only")
        self.poll()  # a store deleted or replaced meanwhile is recreated first, with this session's decisions
        try:
            with self._lock:
                self._upsert(rid, decision, comment)
                self._journal.append((rid, decision, comment))
                stored = self._db.execute(
                    "SELECT decision, comment FROM reviews WHERE study_key=?", (rid.key,)
                ).fetchone()
        except sqlite3.Error as exc:
            log.error("review not saved: %s", exc)
            locked = "locked" in str(exc).lower() or "busy" in str(exc).lower()
            raise ReviewStoreError(
                "not saved: the review store is locked by another program; try again"
                if locked
                else f"not saved: the review store failed ({exc})"
            ) from exc
        return Review(*stored) if stored else Review(decision or "", comment or "")

    def _upsert(self, rid: ReviewId, decision: str | None, comment: str | None) -> None:
        values = (rid.key, decision, comment, time.time(), rid.instance, rid.patient)
        self._db.execute(UPSERT, (*values, decision, comment))

    # -- arrival times -------------------------------------------------------------------------------

    def arrivals(self, first_seen: dict[str, float]) -> dict[str, float]:
        """The arrival time of each study key: the stored one, else the time given (stored now, so that the
        wait goes on after a restart). A store that cannot be written keeps the new ones in memory."""
        if not first_seen:
            return {}
        keys = list(first_seen)
        if not self.read_only:
            new = [(key, when) for key, when in first_seen.items() if key not in self._arrived]
            try:
                with self._lock:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        self._db.executemany("INSERT OR IGNORE INTO arrivals VALUES (?, ?)", new)
                    finally:
                        self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                log.error("arrival times not stored: %s", exc)
        query = "SELECT study_key, arrived FROM arrivals WHERE study_key IN ({marks})"
        try:
            stored = dict(self._rows(query, keys))
        except ReviewStoreError:
            stored = {}
        found = {key: stored.get(key, self._arrived.get(key, when)) for key, when in first_seen.items()}
        self._arrived.update(found)
        return found

    # -- another window, another file ----------------------------------------------------------------

    def poll(self) -> bool:
        """Has the store changed under this session: another program (a second window) wrote to it, or the
        file was deleted or replaced? A deleted or replaced store is recreated (or opened) and this session's
        decisions and arrival times are written to it again, with a notice (``take_notice``). True when the
        reviews shown must be read again."""
        if self.read_only:
            return False
        with self._poll_lock:
            if _file_id(self.path) != self._file:
                self._reopen()
                return True
            version = self._data_version()
            if version is None:  # locked or failing: looked at again at the next poll
                return False
            changed, self._version = version != self._version, version
            return changed

    def take_notice(self) -> str:
        """What the user must be told about the store since the last call ("" when nothing)."""
        notice, self._pending_notice = self._pending_notice, ""
        return notice

    def _data_version(self) -> int | None:
        """Changes when another connection (another window, another program) commits to the store."""
        try:
            with self._lock:
                return int(self._db.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            log.info("review store version not read: %s", exc)
            return None

    def _reopen(self) -> None:
        gone = not self.path.exists()
        log.error("review store %s was %s while the app ran", self.path, "deleted" if gone else "replaced")
        with self._lock:
            try:
                self._db.close()  # the connection to the file no longer there
            except sqlite3.Error as exc:
                log.warning("closing the review store that was %s: %s", "deleted" if gone else "replaced", exc)
            self._db = self._open()
            self._file = _file_id(self.path)
            failed = "" if self.read_only else self._replay()
        self._version = self._data_version()
        what = "deleted while the app ran: it was recreated" if gone else "replaced by another file while the app ran"
        count = len(self._journal)
        if self.read_only or failed:
            kept = f"this session's {count} saved decisions are NOT in it ({failed or 'it cannot be written'})"
        else:
            kept = f"this session's {count} saved decisions and comments were written to it again"
        self._pending_notice = f"The review store {self.path} was {what}; {kept}."
        self.notice = self._pending_notice

    def _replay(self) -> str:
        """Write this session's decisions and arrival times again (a recreated or replaced store); the error,
        "" when written. A failure is tried again at the next poll."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for rid, decision, comment in self._journal:
                    self._upsert(rid, decision, comment)
                self._db.executemany("INSERT OR IGNORE INTO arrivals VALUES (?, ?)", list(self._arrived.items()))
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            log.error("this session's decisions could not be written to the new review store: %s", exc)
            self._file = None  # the next poll tries again
            return f"not written yet: {exc}; tried again at the next save"
        return ""

    def get(self, study_key: str) -> Review:
        return self.get_many([study_key]).get(study_key, Review())

    def get_many(self, study_keys: list[str]) -> dict[str, Review]:
        """Reviews of the given keys that have one, in one query (the GUI thread asks for a batch of rows)."""
        query = "SELECT study_key, decision, comment FROM reviews WHERE study_key IN ({marks})"
        return {key: Review(decision, comment) for key, decision, comment in self._rows(query, study_keys)}

    def _rows(self, query: str, values: list[str]) -> list[tuple]:
        """``query`` (with ``{marks}`` for the values) run over ``values`` in chunks."""
        found: list[tuple] = []
        try:
            with self._lock:
                for start in range(0, len(values), 500):  # SQLite's bound-parameter limit
                    chunk = values[start : start + 500]
                    found += self._db.execute(query.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
        except sqlite3.Error as exc:
            log.error("reviews could not be read: %s", exc)
            raise ReviewStoreError(f"reviews could not be read ({exc})") from exc
        return found

    def load(self, ids: list[ReviewId]) -> tuple[dict[str, Review], set[str]]:
        """The reviews of ``ids`` (by key) and the keys whose instance has a review under another patient.

        A review from a store written before reviews carried the patient (keyed by instance alone) is taken
        over by the first study that asks for it, and then belongs to that patient."""
        reviews = self.get_many([rid.key for rid in ids])
        instances = sorted({rid.instance for rid in ids if rid.instance})
        by_instance: dict[str, list[tuple[Review, str]]] = {}
        for query in (
            "SELECT instance_key, decision, comment, patient_hash FROM reviews WHERE instance_key IN ({marks})",
            "SELECT study_key, decision, comment, '' FROM reviews WHERE patient_hash = '' AND study_key IN ({marks})",
        ):
            for instance, decision, comment, patient in self._rows(query, instances):
                by_instance.setdefault(instance, []).append((Review(decision, comment), patient))
        collisions: set[str] = set()
        for rid in ids:
            others = [(review, p) for review, p in by_instance.get(rid.instance, []) if p != rid.patient]
            if any(patient for _, patient in others):
                collisions.add(rid.key)
            legacy = next((review for review, patient in others if not patient), None)
            if rid.key not in reviews and legacy is not None:
                reviews[rid.key] = legacy
                self._take_over(rid)
        return reviews, collisions

    def _take_over(self, rid: ReviewId) -> None:
        """Move a legacy review (keyed by instance alone) to this study's key, with its patient."""
        if self.read_only:
            return
        try:
            with self._lock:
                self._db.execute(
                    "UPDATE reviews SET study_key=?, instance_key=?, patient_hash=? WHERE study_key=? "
                    "AND patient_hash=''",
                    (rid.key, rid.instance, rid.patient, rid.instance),
                )
        except sqlite3.Error as exc:  # the review is still shown; it is taken over at the next start
            log.error("a legacy review could not be re-keyed: %s", exc)

    def all(self) -> dict[str, Review]:
        with self._lock:
            return {k: Review(d, c) for k, d, c in self._db.execute("SELECT study_key, decision, comment FROM reviews")}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _salvage(kept: Path, db: sqlite3.Connection) -> tuple[int, str]:
    """Copy what can still be read from a damaged store into ``db``; (count, the error that stopped it)."""
    recovered, stopped = 0, ""
    try:
        old = sqlite3.connect(kept.absolute().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        log.error("damaged review store cannot be opened for recovery: %s", exc)
        return 0, str(exc)
    db.execute("BEGIN")  # one transaction: one sync for all that is recovered
    try:
        columns = {row[1] for row in old.execute("PRAGMA table_info(reviews)")}
        extra = ", ".join(c if c in columns else "''" for c in ADDED_COLUMNS)
        for row in old.execute(f"SELECT study_key, decision, comment, updated, {extra} FROM reviews"):
            db.execute("INSERT OR IGNORE INTO reviews VALUES (?, ?, ?, ?, ?, ?)", row)
            recovered += 1
    except sqlite3.Error as exc:
        log.error("recovery from the damaged review store stopped after %d decisions: %s", recovered, exc)
        stopped = str(exc)
    finally:
        db.execute("COMMIT")
        old.close()
    return recovered, stopped


def _file_id(path: Path) -> tuple[int, int] | None:
    """Which file is under ``path`` (device, inode); None when there is none."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino
