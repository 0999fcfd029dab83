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


def scan(
    paths: Iterable[str | Path],
    metadata: Mapping[str, dict[str, str]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScanResult:
    """Read every study header under ``paths``; nothing aborts the scan.

    ``metadata`` maps a file name to extra fields (e.g. NIH ``patient_id`` and ``view_position``).
    """
    result = ScanResult()
    for count, path in enumerate(iter_study_files(paths), start=1):
        try:
            result.studies.append(read_header(path, (metadata or {}).get(path.name)))
        except StudyError as exc:  # read_header turns every failure into one
            result.errors.append(exc)
        if progress is not None:
            progress(count)
    return result
