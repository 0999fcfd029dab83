"""The triage session: the studies of a set of opened folders, each taken once along five hops, never back:

1. scan: the study files under the folders (``iter_study_files``);
2. read header: one header per file (``read_header``): the row appears, queued, or with its reason;
3. decode once into the cache: header and display image from one read of the file (``read_study``), kept in
   :class:`ImageCache` for the viewer and Grad-CAM too, under the study's identity: a file that now holds
   another study than the one listed (replaced meanwhile) re-identifies its row, never gives it its pixels;
4. score: the engine's batched model;
5. apply and order: the row gets its scores and tier (urgent, CHECK, routine) at the session's operating point;
   the worklist's reading order (``worklist.order``) places it.

Plain Python, no Qt: ``cxr-triage`` and the app drive the same session. It is safe to use from several
threads (the app scores in a worker thread while the GUI thread reads and reviews): its state changes under
one lock and listeners get :class:`SessionEvents` in the thread that made the change. Readers get copies
(:meth:`TriageSession.snapshot`), never the rows being changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cxr_desktop.inference.triage import TriagePolicy
from cxr_desktop.studies.reader import FileChanged, StudyReplaced, read_same_study
from cxr_desktop.studies.reader import warm_up as warm_up_readers
from cxr_desktop.studies.scan import Scanned, iter_scan
from cxr_desktop.studies.study import Stamp, StudyError, StudyInfo, file_stamp
from cxr_desktop.worklist.events import SessionEvents
from cxr_desktop.worklist.image_cache import ImageCache
from cxr_desktop.worklist.reviews import ReviewStore, ReviewStoreError
from cxr_desktop.worklist.rows import QUEUED, STORE_COLLISION_NOTE, Review, Row, Worklist

if TYPE_CHECKING:  # the engine pulls in torch; a session is created before the model loads
    from cxr_desktop.inference.engine import Engine, StudyResult

log = logging.getLogger(__name__)

SCAN_CHUNK = 64  # rows announced together while a folder is scanned


def _cache_key(path: Path, info: StudyInfo) -> tuple[Path, str, str]:
    """A decoded image is the study's, not the path's: another study in the same file never gets it."""
    return path, info.study_key, info.patient_id


@dataclass(frozen=True)
class Snapshot:
    """The worklist at one moment, for a reader in another thread: copies of the rows in reading order."""

    rows: list[Row]
    overdue: frozenset[Path]
    counts: dict[str, int]
    done: int  # studies scored (or failed at decoding) of the ``total`` queued so far
    total: int
    now: float


class TriageSession:
    """Scan, read, decode, score, apply and order the studies of the folders opened, and announce each change
    on ``events``. ``engine`` may come later (:meth:`set_engine`); queued rows wait for it. ``reviews``
    attaches stored decisions to the rows as they are listed; ``metadata`` maps a file name to extra header
    fields (e.g. NIH patient and view). A model without an external validation record of its urgent finding
    flags no study (research mode) unless ``allow_unvalidated`` (see ``TriagePolicy``)."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        max_wait_s: float | None = None,
        metadata: Mapping[str, dict[str, str]] | None = None,
        reviews: ReviewStore | None = None,
        cache: ImageCache | None = None,
        synthetic: bool = False,
        operating_point: str | None = None,
        allow_unvalidated: bool = False,
    ) -> None:
        self.events = SessionEvents()
        self.allow_unvalidated = allow_unvalidated
        self.metadata = dict(metadata or {})
        self.reviews = reviews
        self.cache = cache if cache is not None else ImageCache()
        self.synthetic = synthetic
        self.worklist = Worklist(max_wait_s)
        self.engine: Engine | None = None
        self._lock = threading.RLock()
        self._pending: list[Path] = []
        self._stamps: dict[Path, Stamp | None] = {}  # each file's stamp when its header was read
        self._done = self._total = 0
        if engine is not None:
            self.set_engine(engine, operating_point)

    # -- model and policy ----------------------------------------------------------------------------

    @property
    def policy(self) -> TriagePolicy | None:
        return self.worklist.policy

    @property
    def max_wait_s(self) -> float | None:
        return self.worklist.max_wait_s

    def set_engine(self, engine: Engine, operating_point: str | None = None) -> TriagePolicy:
        """Score with ``engine`` from now on, at ``operating_point``: by default the point chosen so far when
        the new card has it, else the engine's. Rows already scored are re-flagged at once."""
        current = self.policy.operating_point if self.policy else None
        point = operating_point or (current if current in engine.card.operating_points else None)
        policy = TriagePolicy.from_card(engine.card, point or engine.policy.operating_point, self.allow_unvalidated)
        warm_up_readers()  # in the caller's thread (the app's scoring thread), before the first folder
        with self._lock:
            self.engine = engine
        self._set_policy(policy)
        return policy

    def set_operating_point(self, name: str) -> int:
        """Flag every scored row at the card's operating point ``name`` (and those scored later); returns the
        number of urgent rows."""
        if self.engine is None:
            raise RuntimeError("no model is loaded")
        return self._set_policy(TriagePolicy.from_card(self.engine.card, name, self.allow_unvalidated))

    def set_allow_unvalidated(self, allow: bool) -> int:
        """Flag with a model that has no external validation record (or stop: research mode), at once;
        returns the number of urgent rows."""
        with self._lock:
            self.allow_unvalidated = allow
            policy = self.policy
        return 0 if policy is None else self._set_policy(replace(policy, allow_unvalidated=allow))

    def _set_policy(self, policy: TriagePolicy) -> int:
        with self._lock:
            urgent = self.worklist.set_policy(policy)
            paths = [row.path for row in self.worklist.rows]
        self.events.policy_changed.emit(policy)
        self.events.rows_changed.emit(paths)
        return urgent

    def set_max_wait(self, seconds: float | None) -> None:
        with self._lock:
            self.worklist.max_wait_s = seconds
            paths = [row.path for row in self.worklist.rows]
        self.events.rows_changed.emit(paths)

    # -- hops 1 and 2: scan, read headers --------------------------------------------------------------

    def add_paths(self, paths: Iterable[str | Path], settled: Callable[[Path], bool] | None = None) -> int:
        """List the study files under ``paths`` and read each new one's header: one row per file, queued or
        with its reason, and one per folder that cannot be listed. A listed file is read again only when it
        changed since its header was read (its stamp: size, mtime, inode, ctime): it may hold another study
        now. ``settled`` (the watched folder's rule) may hold a file back for a later call. Returns the number
        of rows added or queued again."""

        def wanted(path: Path) -> bool:
            stamp = file_stamp(path)
            with self._lock:
                row = self.worklist.get(path)
                again = row is not None and row.status != QUEUED and stamp != self._stamps.get(path)
            if (row is not None and not again) or (settled is not None and not settled(path)):
                return False
            with self._lock:
                self._stamps[path] = stamp
            return True

        count, chunk = 0, []
        for found in iter_scan([Path(p) for p in paths], self.metadata, wanted, self._folder_listed):
            if found.folder and self.worklist.get(found.path) is not None:
                continue  # still cannot be listed: its row says so already
            chunk.append(found)
            if len(chunk) >= SCAN_CHUNK:
                count += self._list(chunk)
                chunk = []
        return count + (self._list(chunk) if chunk else 0)

    def _folder_listed(self, folder: Path) -> None:
        """A folder listed now that could not be listed before: its row goes (its studies get theirs)."""
        with self._lock:
            row = self.worklist.get(folder)
            gone = row is not None and row.info is None and self.worklist.remove(folder) is not None
        if gone:
            self.events.rows_changed.emit([folder])

    def _list(self, found: list[Scanned]) -> int:
        with self._lock:
            rows, replaced = [], []
            for item in found:
                row = self.worklist.add(item.path, item.info, item.error, self.synthetic, item.folder)
                if row is None:  # listed before and changed since: read again
                    old = self.worklist.get(item.path)
                    key = old.key
                    if old.info is not None:
                        self.cache.discard(_cache_key(old.path, old.info))
                    row = self.worklist.requeue(item.path, item.info, item.error)
                    if row.key != key:
                        replaced.append(row.path)
                if row.status == QUEUED:
                    self._pending.append(row.path)
                    self._total += 1
                rows.append(row)
            ids = {row.path: row.review_id for row in rows if row.info is not None}
        self._attach_reviews(ids)
        if replaced:
            self.events.replaced.emit(replaced)
        self.events.rows_changed.emit([row.path for row in rows])
        self.events.progress.emit(*self.progress)
        return len(rows)

    def _attach_reviews(self, ids: dict, arrivals: bool = True) -> None:
        """The stored review of each row (path: ReviewId) and, with ``arrivals``, the time its study first
        arrived (stored at its first sighting: the wait survives a restart)."""
        if self.reviews is None or not ids:
            return
        try:
            reviews, collisions = self.reviews.load(list(ids.values()))
            with self._lock:
                seen = {rid.key: self.worklist.get(path).arrived_at for path, rid in ids.items()}
            arrived = self.reviews.arrivals(seen) if arrivals else {}
        except ReviewStoreError as exc:
            self.events.notice.emit(f"Earlier reviews could not be read: {exc}")
            return
        with self._lock:
            for path, rid in ids.items():
                row = self.worklist.get(path)
                if row is None or row.review_id != rid:
                    continue  # read again meanwhile
                row.review = reviews.get(rid.key, Review())
                row.arrived_at = arrived.get(rid.key, row.arrived_at)
                if rid.key in collisions and not row.collision:
                    row.collision = STORE_COLLISION_NOTE

    def sync_reviews(self) -> bool:
        """Show what another window saved in the review store meanwhile, and recreate a store deleted or
        replaced while the app runs (with this session's decisions; the notice says so). True when the rows'
        reviews were read again."""
        if self.reviews is None:
            return False
        changed = self.reviews.poll()
        notice = self.reviews.take_notice()
        if notice:
            self.events.notice.emit(notice)
        if changed:
            with self._lock:
                ids = {row.path: row.review_id for row in self.worklist.rows if row.info is not None}
            self._attach_reviews(ids, arrivals=False)
        return changed

    # -- hops 3 to 5: decode once, score, apply ------------------------------------------------------

    def score_pending(self, stop: Callable[[], bool] | None = None) -> None:
        """Decode, score and apply every queued row, in batches, until none is left (rows queued meanwhile
        included) or ``stop()``; then ``idle``. Without a model the rows stay queued."""
        while stop is None or not stop():
            with self._lock:
                engine, todo, self._pending = self.engine, self._pending, []
            if engine is None:
                with self._lock:
                    self._pending = todo + self._pending
                return
            if not todo:
                self.events.idle.emit()
                return
            for results in engine.score_batches(todo, self._load):
                self._apply(results)
                if stop is not None and stop():
                    return

    def _load(self, path: Path) -> tuple[StudyInfo, np.ndarray]:
        """Scoring's read: the header and the pixels of one read of the file. A file that holds another study
        than its row's gives that study's header, which the result brings to the row (``Worklist.apply``)."""
        info = self._info(path)
        try:
            return info, self.image(path, info)
        except StudyReplaced as replaced:
            with self._lock:
                self._stamps[path] = replaced.stamp
            log.warning("%s: replaced by another study since it was listed; scored as that study", path.name)
            return replaced.study.info, replaced.study.image

    def _apply(self, results: list[StudyResult]) -> None:
        with self._lock:
            before = {r.path: row.review_id for r in results if (row := self.worklist.get(r.path)) is not None}
            for result in results:
                self.worklist.apply(result)
            self._done += len(results)
            replaced = {
                path: row.review_id
                for path, rid in before.items()
                if (row := self.worklist.get(path)).info is not None and row.review_id != rid
            }
        self._attach_reviews(replaced)  # the new study's own review (none, usually), never the old one's
        if replaced:
            self.events.replaced.emit(list(replaced))
        self.events.rows_changed.emit([result.path for result in results])
        self.events.progress.emit(*self.progress)

    def _info(self, path: Path) -> StudyInfo:
        with self._lock:
            row = self.worklist.get(path)
        if row is None or row.info is None:
            raise StudyError(path, "not on the worklist (or its header could not be read)")
        return row.info

    def image(self, path: Path, info: StudyInfo | None = None) -> np.ndarray:
        """The study's display image (read-only): from the cache, else decoded now and cached. Raises
        ``StudyError`` with the reason when it cannot be decoded, and ``FileChanged`` (``StudyReplaced``: it
        holds another study now) when the file changed since it was listed: it is to be read again, which
        ``files_changed`` asks for (the watched folder, or the next opening, reads it)."""
        path = Path(path)
        info = info or self._info(path)
        try:
            return self.cache.get_or_load(
                _cache_key(path, info), lambda: read_same_study(path, info, self.metadata.get(path.name))
            )
        except FileChanged as exc:
            if isinstance(exc, StudyReplaced):
                self.cache.put(_cache_key(path, exc.study.info), exc.study.image)
            self.events.files_changed.emit([path])
            raise

    def heatmap(self, path: Path, finding: str | None = None, info: StudyInfo | None = None) -> np.ndarray:
        """Grad-CAM of the urgent finding (or ``finding``) over the study's (``info``'s, when given) cached image,
        in [0, 1]."""
        engine = self.engine
        if engine is None:
            raise RuntimeError("no model is loaded")
        return engine.heatmap(self.image(path, info), finding)

    def run(self, paths: Iterable[str | Path]) -> list[Row]:
        """All five hops for ``paths`` in the calling thread; the rows in arrival order (``cxr-triage``)."""
        self.add_paths(paths)
        self.score_pending()
        return self.rows_in_arrival()

    # -- reading and reviewing -----------------------------------------------------------------------

    @property
    def progress(self) -> tuple[int, int]:
        with self._lock:
            return self._done, self._total

    def snapshot(self, now: float | None = None) -> Snapshot:
        self.sync_reviews()
        now = time.time() if now is None else now
        with self._lock:
            ordered = self.worklist.ordered(now)
            overdue = frozenset(row.path for row in ordered if self.worklist.overdue(row, now))
            rows = [_copy(row) for row in ordered]
            return Snapshot(rows, overdue, self.worklist.counts(), self._done, self._total, now)

    def rows_in_arrival(self) -> list[Row]:
        with self._lock:
            return [_copy(row) for row in self.worklist.rows]

    def row(self, path: Path) -> Row | None:
        with self._lock:
            row = self.worklist.get(Path(path))
            return None if row is None else _copy(row)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return self.worklist.counts()

    def review(self, path: Path, decision: str, comment: str, key: str | None = None) -> None:
        """Store a decision and comment durably, then show them; ``ReviewStoreError`` (nothing changed) when
        they were not saved, also when the file no longer holds the study ``key`` the reader acted on. Only what
        differs from the row as shown is written (field by field): a comment saved here leaves another window's
        decision on the same study as it is, and the other way round."""
        if self.reviews is None:
            raise ReviewStoreError("not saved: this session has no review store")
        with self._lock:
            row = self.worklist.get(Path(path))
            if row is None or row.info is None:
                raise ValueError(f"{path} is not a readable study of this worklist")
            if key is not None and row.key != key:
                raise ReviewStoreError("not saved: the file holds another study now")
            rid, shown = row.review_id, replace(row.review)
        changed = {"decision": decision, "comment": comment}
        changed = {name: value for name, value in changed.items() if value != getattr(shown, name)}
        if not changed:  # e.g. a comment box left as it was: nothing to store
            return
        stored = self.reviews.update(rid, changed.get("decision"), changed.get("comment"))
        with self._lock:
            if row.review_id == rid:
                row.review = stored
        self.events.rows_changed.emit([row.path])


def _copy(row: Row) -> Row:
    return replace(row, review=replace(row.review))
