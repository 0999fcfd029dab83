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
    folder: bool = False  # a folder that could not be listed (``error`` says why)


def iter_study_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every candidate study file under the given files/folders, sorted (a folder that cannot be listed is
    logged; :func:`iter_scan` gives it a row). Links to folders (a mounted share, a day folder) are followed,
    each folder listed once: a link back to a folder already listed (a loop) is not followed again."""
    for entry in iter_entries(paths):
        if isinstance(entry, Path):
            yield entry


def iter_entries(paths: Iterable[str | Path], listed: Callable[[Path], None] | None = None) -> Iterator[Path | Scanned]:
    """:func:`iter_study_files`, with a :class:`Scanned` error in its place for every folder that cannot be
    listed (permission denied, an I/O error on a share); ``listed(folder)`` is called for each folder listed."""
    for root in paths:
        root = Path(root)
        if not root.is_dir():
            yield root
            continue
        failed: list[OSError] = []
        seen = {_folder_key(root)}
        for folder, dirs, files in os.walk(root, onerror=failed.append, followlinks=True):
            yield from _unlisted(failed)
            if listed is not None:
                listed(Path(folder))
            dirs[:] = sorted(name for name in dirs if _first_visit(Path(folder) / name, seen))
            for name in sorted(files):
                path = Path(folder) / name
                if _listed(path):
                    yield path
        yield from _unlisted(failed)


def _folder_key(folder: Path) -> tuple[int, int] | None:
    """The folder a path leads to (device, inode), or None when it cannot be stat'ed."""
    try:
        status = folder.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _first_visit(folder: Path, seen: set[tuple[int, int] | None]) -> bool:
    """Is ``folder`` (or the folder a link there leads to) not listed yet in this walk? A folder that cannot
    be stat'ed is left to ``os.walk``, which reports it."""
    key = _folder_key(folder)
    if key is None:
        return True
    if key in seen:
        log.info("not listing %s again: it leads to a folder listed already", folder)
        return False
    seen.add(key)
    return True


def _unlisted(failed: list[OSError]) -> Iterator[Scanned]:
    """The folders ``os.walk`` could not list since the last call, each with its reason."""
    while failed:
        exc = failed.pop(0)
        folder = Path(exc.filename) if exc.filename else Path("?")
        reason = f"cannot list folder ({exc.strerror or exc}): its studies cannot be triaged"
        log.info("cannot list folder %s: %s", folder, exc.strerror or exc)  # the row says it (a sweep every 15 s)
        yield Scanned(folder, None, reason, folder=True)


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
    listed: Callable[[Path], None] | None = None,
) -> Iterator[Scanned]:
    """Read the header of every study file under ``paths`` (those ``wanted`` says, when given), one at a time;
    a file that cannot be triaged gives its reason, so does a folder that cannot be listed (``folder=True``,
    never asked ``wanted``), and nothing aborts the scan. ``listed(folder)`` is called for each folder listed.

    ``metadata`` maps a file name to extra fields (e.g. NIH ``patient_id`` and ``view_position``).
    """
    for entry in iter_entries(paths, listed):
        if isinstance(entry, Scanned):
            yield entry
            continue
        if wanted is not None and not wanted(entry):
            continue
        try:
            yield Scanned(entry, read_header(entry, (metadata or {}).get(entry.name)))
        except StudyError as exc:  # read_header turns every failure into one
            yield Scanned(entry, None, exc.reason)


def scan(paths: Iterable[str | Path], metadata: Mapping[str, dict[str, str]] | None = None) -> ScanResult:
    """Every header under ``paths`` at once (see :func:`iter_scan`)."""
    result = ScanResult()
    for found in iter_scan(paths, metadata):
        if found.info is not None:
            result.studies.append(found.info)
        else:
            result.errors.append(StudyError(found.path, found.error))
    return result
