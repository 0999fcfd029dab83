"""Make a scored study's DICOM results (``network.results``) from the session and deliver them: as files in a
folder (``--results DIR``, ``cxr-triage --dicom-out DIR``) and into the outbox for each destination. The node
notes each received instance whose results were delivered (a ledger of empty files), so that a node stopped
before it made them makes them at its next start, and only then."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from cxr_desktop.network.outbox import Outbox, encode
from cxr_desktop.network.results import (
    ModelFacts,
    ResultError,
    heatmap_capture,
    read_source,
    result_name,
    structured_report,
)
from cxr_desktop.network.store import write_atomic
from cxr_desktop.studies.study import StudyError
from cxr_desktop.worklist.rows import DONE, Row
from cxr_desktop.worklist.session import TriageSession

log = logging.getLogger(__name__)

LEDGER = ".results-done"


def model_facts(session: TriageSession) -> ModelFacts:
    engine, policy = session.engine, session.policy
    if engine is None or policy is None:
        raise RuntimeError("no model is loaded")
    card = engine.card
    return ModelFacts(card.model_id, card.fingerprint, policy.finding, policy.threshold, policy.operating_point)


def result_objects(session: TriageSession, row: Row) -> list[Dataset]:
    """The SR of a scored DICOM study, and for an urgent one the heatmap's secondary capture.
    ``ResultError`` (with the reason) when the study cannot have them."""
    if row.status != DONE:
        raise ResultError(f"{row.path.name}: not scored ({row.error or row.status})")
    if row.info is None or row.info.kind != "dicom":
        raise ResultError(f"{row.path.name}: DICOM results need a DICOM source")
    facts = model_facts(session)
    source = read_source(row.path, row.info)
    objects: list[Dataset] = [structured_report(row, source, facts)]
    if row.urgent:
        try:
            image, heatmap = session.image(row.path), session.heatmap(row.path, facts.finding)
        except (StudyError, RuntimeError) as exc:
            log.warning("%s: no heatmap capture: %s", row.path.name, exc)
        else:
            objects.append(heatmap_capture(row, source, image, heatmap, facts))
    return objects


@dataclass
class ResultSink:
    """Where results go: a folder of files, an outbox, or both; ``ledger``: the node's record of received
    instances whose results were delivered."""

    folder: Path | None = None
    outbox: Outbox | None = None
    ledger: Path | None = None
    written: int = 0

    def deliver(self, session: TriageSession, row: Row) -> list[str]:
        """Make and deliver ``row``'s results; returns their file names ([] when it has none, said in the
        log). The ledger notes the instance either way: a study that cannot have results is not retried."""
        try:
            objects = result_objects(session, row)
        except ResultError as exc:
            log.warning("no DICOM results: %s", exc)
            objects = []
        names = []
        for ds in objects:
            name, data = result_name(ds), encode(ds)
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                write_atomic(self.folder / name, data, self.folder / ".incoming")
            if self.outbox is not None:
                self.outbox.put(name, data)
            names.append(name)
        self.written += len(names)
        if self.ledger is not None:
            write_atomic(self.ledger / row.path.name, b"", self.ledger / ".incoming")
        return names

    def undelivered(self, instances: list[Path]) -> list[Path]:
        """The received instances whose results were never delivered (the node stopped first)."""
        if self.ledger is None:
            return []
        return [path for path in instances if not (self.ledger / path.name).exists()]
