"""One worklist row per study file, and the list that keeps them in reading order."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cxr_desktop.core.guard import LATERAL, OK
from cxr_desktop.inference.triage import TriagePolicy
from cxr_desktop.studies.study import StudyInfo, is_lateral, same_identity
from cxr_desktop.worklist.order import QueueEntry, is_overdue, priority_order

if TYPE_CHECKING:  # the engine pulls in torch; the review store must start fast without it
    from cxr_desktop.inference.engine import StudyResult

QUEUED, DONE, ERROR = "queued", "done", "error"
# a scored study's tier (Row.priority): URGENT, CHECK (score at or above the threshold, input doubtful), ROUTINE
URGENT, CHECK, ROUTINE = "urgent", "check", "routine"
AP_NOTE = "AP film: heart size is overstated"
LATERAL_NOTE = "Lateral view: outside the model's scope (trained on frontal films); never flagged urgent"


COLLISION_NOTE = "Same instance UID as another patient's study: check the files; their reviews are kept apart"
STORE_COLLISION_NOTE = "Another patient's study with the same instance UID has a review: reviews are kept apart"


@dataclass
class Review:
    decision: str = ""  # "", "confirmed", "dismissed"
    comment: str = ""


@dataclass(frozen=True)
class ReviewId:
    """What a review is stored under: ``key`` (patient + study + instance), the ``instance`` alone (SOP
    Instance UID, or the content hash of a raster file) and a hash of the ``patient`` ID, so that a file of
    another patient that reuses an instance is seen as a collision instead of inheriting the review."""

    key: str
    instance: str = ""
    patient: str = ""

    @classmethod
    def of(cls, info: StudyInfo) -> ReviewId:
        def digest(*parts: str) -> str:
            joined = "\0".join(parts).encode("utf-8", "surrogateescape")
            return hashlib.sha256(joined).hexdigest()

        key = "v2:" + digest(info.patient_id, info.study_uid, info.study_key)[:40]
        return cls(key, info.study_key, digest("patient", info.patient_id)[:16])


@dataclass
class Row:
    path: Path
    arrival: int
    arrived_at: float
    info: StudyInfo | None = None
    status: str = QUEUED
    error: str = ""
    probabilities: dict[str, float] = field(default_factory=dict)
    urgent: bool = False
    check: bool = False  # at or above the threshold, but the input guard doubts the film (see ``check_note``)
    review: Review = field(default_factory=Review)
    synthetic: bool = False
    collision: str = ""  # set when another patient's study shares this study's instance
    quality: str = ""  # the input guard's verdict (core.guard): "ok", a short reason, or "" when not checked
    folder: bool = False  # a folder that could not be listed (``error`` says why): its studies are unseen

    @property
    def review_id(self) -> ReviewId:
        return ReviewId.of(self.info) if self.info else ReviewId(f"path:{self.path}")

    @property
    def key(self) -> str:
        return self.review_id.key

    @property
    def identity(self) -> tuple[Path, str]:
        """Which study this row is: its file and the study's key. A file replaced by another study keeps its
        path, so a row's path alone never says that two rows are the same study."""
        return self.path, self.key

    def same_study(self, other: Row | None) -> bool:
        return other is not None and self.identity == other.identity

    @property
    def warnings(self) -> list[str]:
        """What the row must warn about: its CHECK tier, the view (AP, lateral), the input guard's doubt, and an
        instance shared with another patient."""
        return [text for text in (self.check_note, self.view_note, self.quality_note, self.collision) if text]

    @property
    def quality_note(self) -> str:
        if not self.doubtful or self.check:  # a lateral view has its own note, a CHECK row its tier's
            return ""
        return f"Input check: {self.quality}; its score can neither flag nor rule out cardiomegaly: read it as unscored"

    @property
    def check_note(self) -> str:
        return f"CHECK — score above threshold, input doubtful: {self.quality}" if self.check else ""

    @property
    def lateral(self) -> bool:
        return self.quality == LATERAL or (self.info is not None and is_lateral(self.info.view_position))

    @property
    def flaggable(self) -> bool:
        """May this study be flagged urgent on its score? Not a lateral view, nor one the input guard doubts."""
        return not self.lateral and self.quality in (OK, "")

    @property
    def doubtful(self) -> bool:
        """Does the input guard doubt this frontal film (rotated, inverted, not a chest radiograph)? A lateral
        view is not doubtful but outside the model's scope, with its own note (CHECK when it scores high)."""
        return not self.lateral and self.quality not in (OK, "")

    @property
    def priority(self) -> str:
        """The scored study's tier: URGENT, CHECK or ROUTINE; "" when it was not scored (queued, or failed, and
        ``error`` says why)."""
        if self.status != DONE:
            return ""
        return URGENT if self.urgent else CHECK if self.check else ROUTINE

    @property
    def view_note(self) -> str:
        if self.info is None:
            return ""
        if is_lateral(self.info.view_position):
            return LATERAL_NOTE
        return AP_NOTE if self.info.view_position == "AP" else ""

    def top_findings(
        self, exclude: str, count: int = 2, among: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """The highest-scoring findings other than ``exclude`` (only those ``among``, when given); findings
        without a score (left out or NaN) are skipped."""
        others = [
            (k, v)
            for k, v in self.probabilities.items()
            if k != exclude and not math.isnan(v) and (among is None or k in among)
        ]
        return sorted(others, key=lambda kv: -kv[1])[:count]


class Worklist:
    """Rows in reading order (see ``priority_order``): studies past ``max_wait_s`` first by waiting time, then
    urgent ones by score, then CHECK ones by score, then the rest by arrival. ``policy`` (the loaded model's
    operating point) flags the rows; ``set_policy`` re-tiers every scored row at once when it changes.

    A scored study at or above the threshold is URGENT when its input passed the guard, CHECK when the guard
    doubts the film or its header says lateral (outside the model's scope). Below the threshold such a study is
    routine, in arrival order as without the model, and its note says that its score does not reassure.
    In research mode (an unvalidated model, ``TriagePolicy.research_mode``) every row stays routine."""

    def __init__(self, max_wait_s: float | None = None, policy: TriagePolicy | None = None) -> None:
        self.rows: list[Row] = []
        self.max_wait_s = max_wait_s
        self.policy = policy
        self._by_path: dict[Path, Row] = {}
        self._arrivals = 0  # rows added so far: each row's arrival number
        self._by_instance: dict[str, list[Row]] = {}

    def add(
        self, path: Path, info: StudyInfo | None = None, error: str = "", synthetic: bool = False, folder: bool = False
    ) -> Row | None:
        """A new queued (or, with ``error``, failed) row; None if the file is already listed."""
        path = Path(path)
        if path in self._by_path:
            return None
        status = ERROR if error else QUEUED
        self._arrivals += 1  # never reused: a row may be removed (``remove``)
        row = Row(path, self._arrivals, time.time(), info, status, error, synthetic=synthetic, folder=folder)
        self.rows.append(row)
        self._by_path[path] = row
        if info is not None:
            self._check_collision(row)
        return row

    def _check_collision(self, row: Row) -> None:
        """Rows of one instance with different patients are all marked (their reviews are kept apart)."""
        rid = row.review_id
        same = self._by_instance.setdefault(rid.instance, [])
        same.append(row)
        if len({other.review_id.patient for other in same}) > 1:
            for other in same:
                other.collision = COLLISION_NOTE

    def requeue(self, path: Path, info: StudyInfo | None, error: str = "") -> Row | None:
        """A listed file read again (it changed since it was listed): its row starts over, queued or with its
        reason; when the file now holds another study, the row takes that study's identity (``reidentify``)."""
        row = self._by_path.get(Path(path))
        if row is not None:
            if info is not None and (row.info is None or not same_identity(row.info, info)):
                self.reidentify(row, info)
            elif info is None:  # no longer readable: no study, no review to show
                row.review = Review()
            row.info, row.error, row.status = info, error, ERROR if error else QUEUED
            row.probabilities, row.urgent, row.check, row.quality = {}, False, False, ""
        return row

    def reidentify(self, row: Row, info: StudyInfo) -> None:
        """The row's file now holds another study (``info``): a new study for the worklist. Its identity,
        instance-clash check and arrival time are the new study's; the review of the old one is detached (the
        caller attaches the new study's stored review, if any)."""
        if row.info is not None:
            old = self._by_instance.get(row.review_id.instance, [])
            if row in old:
                old.remove(row)
        row.info, row.collision, row.review, row.arrived_at = info, "", Review(), time.time()
        self._check_collision(row)

    def remove(self, path: Path) -> Row | None:
        """Take a row off the list (a folder that could not be listed and now can: its studies have rows)."""
        row = self._by_path.pop(Path(path), None)
        if row is not None:
            self.rows.remove(row)
        return row

    def get(self, path: Path) -> Row | None:
        return self._by_path.get(Path(path))

    def apply(self, result: StudyResult) -> Row | None:
        row = self._by_path.get(result.path)
        if row is None:
            return None
        if result.info is not None and (row.info is None or not same_identity(row.info, result.info)):
            # the header and pixels scored came from one read of the file: when that read found another study
            # than the one listed (the file was replaced in between), the row is that study's, never the old one
            self.reidentify(row, result.info)
        if result.ok:
            row.status, row.error = DONE, ""
            row.probabilities, row.quality = result.probabilities, result.quality
            row.urgent, row.check = result.urgent, False  # the engine's flag, until the policy below tiers it
            if self.policy is not None:  # the same rule as the engine's, at the operating point shown
                self._flag(row)
        else:
            row.status, row.error = ERROR, result.error
        return row

    def _flag(self, row: Row) -> None:
        """Set the row's tier: at or above the threshold (never in research mode), URGENT when its input passed
        the guard, else CHECK: the guard doubts the film, or its header says lateral (outside the model's scope,
        or a frontal film with a wrong view tag: either way a high score is not buried among routine studies)."""
        above = self.policy is not None and self.policy.is_urgent(row.probabilities)
        row.urgent, row.check = above and row.flaggable, above and not row.flaggable

    def set_policy(self, policy: TriagePolicy) -> int:
        """Tier every scored row at ``policy``'s threshold; returns the number of urgent rows."""
        self.policy = policy
        for row in self.rows:
            if row.status == DONE:
                self._flag(row)
        return sum(row.urgent for row in self.rows)

    def score(self, row: Row) -> float:
        """The urgent finding's score (NaN when not scored or no policy is set)."""
        if self.policy is None or row.status != DONE:
            return math.nan
        return row.probabilities.get(self.policy.finding, math.nan)

    def _entry(self, row: Row) -> QueueEntry:
        return QueueEntry(row.arrival, row.arrived_at, row.urgent, self.score(row), row.check)

    def overdue(self, row: Row, now: float | None = None) -> bool:
        """Has the study waited longer than ``max_wait_s`` (and so been moved up the list)?"""
        return is_overdue(self._entry(row), time.time() if now is None else now, self.max_wait_s)

    def ordered(self, now: float | None = None) -> list[Row]:
        entries = [self._entry(r) for r in self.rows]
        order = priority_order(entries, time.time() if now is None else now, self.max_wait_s)
        return [self.rows[i] for i in order]

    def counts(self) -> dict[str, int]:
        out = {QUEUED: 0, DONE: 0, ERROR: 0, URGENT: 0, CHECK: 0}
        for row in self.rows:
            out[row.status] += 1
            out[URGENT] += int(row.urgent)
            out[CHECK] += int(row.check)
        return out
