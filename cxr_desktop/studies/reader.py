"""One entry point for any study file: picks the DICOM or raster reader and turns every failure into a
:class:`StudyError` with a reason."""

from __future__ import annotations

from pathlib import Path

from cxr_desktop.studies.raster import RASTER_SUFFIXES, read_raster, read_raster_header
from cxr_desktop.studies.study import LoadedStudy, StudyError, StudyInfo

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}


def has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def study_kind(path: Path) -> str | None:
    """ "dicom", "raster", or None for files that are not studies (README.txt, CSVs, ...)."""
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in RASTER_SUFFIXES:
        return "raster"
    if suffix in ("", ".ima") or suffix[1:].isdigit():
        return "dicom" if has_dicom_preamble(path) else None
    return None


def _guard(path: Path) -> str:
    kind = study_kind(path)
    if kind is None:
        raise StudyError(path, "not a DICOM, PNG or JPEG file")
    try:
        if path.stat().st_size == 0:
            raise StudyError(path, "file is empty (0 bytes)")
    except FileNotFoundError:
        raise StudyError(path, "file no longer exists") from None
    except OSError as exc:
        raise StudyError(path, f"cannot access file ({exc.strerror or exc})") from None
    return kind


def read_header(path: Path, metadata: dict[str, str] | None = None) -> StudyInfo:
    """Metadata and the suitability checks, without decoding pixels."""
    path = Path(path)
    kind = _guard(path)
    try:
        if kind == "dicom":
            from cxr_desktop.studies.dicom import read_dicom_header  # pydicom loads only when a DICOM comes

            return read_dicom_header(path)
        return read_raster_header(path, metadata)
    except PermissionError:
        raise StudyError(path, "permission denied") from None
    except OSError as exc:
        raise StudyError(path, f"cannot read file ({exc.strerror or exc})") from None


def read_study(path: Path, metadata: dict[str, str] | None = None) -> LoadedStudy:
    """Decode one study to a gray display-polarity image, or raise StudyError with the reason."""
    path = Path(path)
    kind = _guard(path)
    try:
        if kind == "dicom":
            from cxr_desktop.studies.dicom import read_dicom

            return read_dicom(path)
        return read_raster(path, metadata)
    except PermissionError:
        raise StudyError(path, "permission denied") from None
    except MemoryError:
        raise StudyError(path, "image too large to decode in memory") from None
    except OSError as exc:
        raise StudyError(path, f"cannot read file ({exc.strerror or exc})") from None
