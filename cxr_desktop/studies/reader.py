"""One entry point for any study file: picks the DICOM or raster reader and turns every failure into a
:class:`StudyError` with a reason. Only regular files within the size cap are opened."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from cxr_desktop.studies.raster import RASTER_SUFFIXES, read_raster, read_raster_header, read_raster_pixels
from cxr_desktop.studies.study import (
    LoadedStudy,
    Stamp,
    StudyError,
    StudyInfo,
    check_regular,
    file_stamp,
    open_regular,
    same_identity,
    special_kind,
)

log = logging.getLogger(__name__)

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
T = TypeVar("T")


def has_dicom_preamble(path: Path) -> bool:
    try:
        with open_regular(path) as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except (OSError, StudyError):
        return False


def unreadable(path: Path) -> bool:
    """A file that exists but cannot be opened (permission denied, an I/O error): it may be a study, so it is
    listed and the reader gives the reason, never dropped unseen."""
    try:
        os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.lexists(path)
    return False


def candidate_name(path: Path) -> bool:
    """A name a study file may have: a DICOM or raster suffix, none, ``.ima`` or a number."""
    suffix = path.suffix.lower()
    return suffix in DICOM_SUFFIXES or suffix in RASTER_SUFFIXES or suffix in ("", ".ima") or suffix[1:].isdigit()


def study_kind(path: Path) -> str | None:
    """ "dicom", "raster", or None for files that are not studies (README.txt, CSVs, ...)."""
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in RASTER_SUFFIXES:
        return "raster"
    if candidate_name(path):
        return "dicom" if has_dicom_preamble(path) or unreadable(path) else None
    return None


def _guard(path: Path) -> str:
    try:
        status = path.stat()
    except FileNotFoundError:
        raise StudyError(path, "file no longer exists") from None
    except OSError as exc:
        raise StudyError(path, f"cannot access file ({exc.strerror or exc})") from None
    special = special_kind(status.st_mode)
    if special:
        raise StudyError(path, f"not a regular file: {special}")
    kind = study_kind(path)
    if kind is None:
        raise StudyError(path, "not a DICOM, PNG or JPEG file")
    if status.st_size == 0:
        raise StudyError(path, "file is empty (0 bytes)")
    check_regular(path, status)  # the size cap
    return kind


def _guarded(path: Path, read: Callable[[], T]) -> T:
    """Run one reader; every exception becomes this file's StudyError (nothing escapes to end a batch)."""
    try:
        return read()
    except StudyError:
        raise
    except PermissionError:
        raise StudyError(path, "permission denied") from None
    except FileNotFoundError:
        raise StudyError(path, "file no longer exists") from None
    except MemoryError:
        raise StudyError(path, "image too large to decode in memory") from None
    except OSError as exc:
        raise StudyError(path, f"cannot read file ({exc.strerror or exc})") from None
    except RecursionError:
        log.warning("%s: structure nested too deeply to read", path.name)
        raise StudyError(path, "file structure is nested too deeply to read (RecursionError)") from None
    except Exception as exc:  # a reader's bug or a library's surprise: this file's error, never the batch's
        log.warning("%s: unexpected %s while reading", path.name, type(exc).__name__)
        raise StudyError(path, f"cannot read file ({type(exc).__name__}: {exc})") from None


def warm_up() -> None:
    """Import what the readers load on first use (Pillow's format plugins), so that the first folder opened
    does not pay for it while the window is drawing its first rows (a 130 ms GUI stall, measured with
    ``benchmarks/gui_responsiveness.py``)."""
    from PIL import Image

    Image.preinit()


def read_header(path: Path, metadata: dict[str, str] | None = None) -> StudyInfo:
    """Metadata and the suitability checks, without decoding pixels."""
    path = Path(path)

    def read() -> StudyInfo:
        if _guard(path) == "dicom":
            from cxr_desktop.studies.dicom import read_dicom_header  # pydicom loads only when a DICOM comes

            return read_dicom_header(path)
        return read_raster_header(path, metadata)

    return _guarded(path, read)


def read_study(path: Path, metadata: dict[str, str] | None = None) -> LoadedStudy:
    """Decode one study to a gray display-polarity image, or raise StudyError with the reason."""
    path = Path(path)

    def read() -> LoadedStudy:
        if _guard(path) == "dicom":
            from cxr_desktop.studies.dicom import read_dicom

            return read_dicom(path)
        return read_raster(path, metadata)

    return _guarded(path, read)


class FileChanged(StudyError):
    """A listed file changed on disk since its header was read: it is to be read again."""


class StudyReplaced(FileChanged):
    """The file holds another study than the one listed: ``study`` is what it holds now (header and pixels
    from one read), ``stamp`` the file's stamp just before that read."""

    def __init__(self, path: Path, study: LoadedStudy, stamp: Stamp | None) -> None:
        super().__init__(path, "the file now holds another study than the one listed: it is read again")
        self.study, self.stamp = study, stamp


def read_same_study(path: Path, info: StudyInfo, metadata: dict[str, str] | None = None) -> np.ndarray:
    """The pixels of the study ``info`` describes, from a read that also gives the header they came with, so
    that a file replaced since ``info`` was read never lends another patient's pixels to it: StudyReplaced
    when the file now holds another study, FileChanged when it changed while it was read."""
    path = Path(path)
    stamp = file_stamp(path)
    study = read_study(path, metadata)
    if file_stamp(path) != stamp:
        raise FileChanged(path, "the file changed while it was read (still being written?)")
    if not same_identity(study.info, info):
        raise StudyReplaced(path, study, stamp)
    return study.image


def read_pixels(path: Path, info: StudyInfo) -> np.ndarray:
    """Decode the pixels of a study whose header (``info``) was read already: the same image as
    ``read_study(path).image``, without reading or hashing a second header. Nothing checks that the file is
    still the study ``info`` describes: the worklist decodes with :func:`read_study` and compares."""
    path = Path(path)

    def read() -> np.ndarray:
        if _guard(path) == "dicom":
            from cxr_desktop.studies.dicom import read_dicom_pixels

            return read_dicom_pixels(path)
        return read_raster_pixels(
            path, int(info.extra.get("exif_orientation", 1)), float(info.extra.get("pixel_aspect", 1.0))
        )

    return _guarded(path, read)
