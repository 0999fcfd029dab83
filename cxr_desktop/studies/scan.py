"""Recursive folder scan: headers only, and a reason for every file that cannot be triaged."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cxr_desktop.studies.reader import candidate_name, read_header, study_kind
from cxr_desktop.studies.study import StudyError, StudyInfo, special_kind

log = logging.getLogger(__name__)


@dataclass
class ScanResult:
    studies: list[StudyInfo] = field(default_factory=list)
    errors: list[StudyError] = field(default_factory=list)


@dataclass(frozen=True)
class Scanned:
    """One file found by a scan: its header, or the reason it cannot be triaged."""

    path: Path
    info: StudyInfo | None
    error: str = ""


def iter_study_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every candidate study file under the given files/folders, sorted, never following directory links."""
    for root in paths:
        root = Path(root)
        if not root.is_dir():
            yield root
            continue

        def _report(exc: OSError) -> None:
            log.warning("cannot list folder %s: %s", exc.filename, exc.strerror)

        for folder, dirs, files in os.walk(root, onerror=_report, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder) / name
                if _listed(path):
                    yield path


def _listed(path: Path) -> bool:
    """A study by its name or preamble; also a FIFO, socket or device with a name a study may have, so that
    it is listed with its reason (it is never opened: reading a FIFO would block the scan for ever)."""
    try:
        mode = path.stat().st_mode
    except OSError:  # a dangling link or a loop: listed by its name, the reader gives the reason
        return study_kind(path) is not None
    if special_kind(mode):
        return candidate_name(path)
    return study_kind(path) is not None


def iter_scan(
    paths: Iterable[str | Path],
    metadata: Mapping[str, dict[str, str]] | None = None,
    wanted: Callable[[Path], bool] | None = None,
) -> Iterator[Scanned]:
    """Read the header of every study file under ``paths`` (those ``wanted`` says, when given), one at a time;
    a file that cannot be triaged gives its reason and nothing aborts the scan.

    ``metadata`` maps a file name to extra fields (e.g. NIH ``patient_id`` and ``view_position``).
    """
    for path in iter_study_files(paths):
        if wanted is not None and not wanted(path):
            continue
        try:
            yield Scanned(path, read_header(path, (metadata or {}).get(path.name)))
        except StudyError as exc:  # read_header turns every failure into one
            yield Scanned(path, None, exc.reason)


def scan(paths: Iterable[str | Path], metadata: Mapping[str, dict[str, str]] | None = None) -> ScanResult:
    """Every header under ``paths`` at once (see :func:`iter_scan`)."""
    result = ScanResult()
    for found in iter_scan(paths, metadata):
        if found.info is not None:
            result.studies.append(found.info)
        else:
            result.errors.append(StudyError(found.path, found.error))
    return result
