"""Plain data for one study (one image file) and the error every reader raises."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

MIN_SIDE = 32  # smaller images cannot be a radiograph worth scoring
# what one file may cost: a 4300^2 16-bit detector image is ~37 MB uncompressed, a 64 M px one 128 MB
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_PIXELS = 64_000_000  # decoded pixels; a 1024^2 radiograph is 1 M px, a 4300^2 detector 18 M px
# words of a view name that say lateral (ViewPosition LL, RL; vendor spellings LLAT, RLAT, LATERAL_LEFT,
# "LEFT LATERAL", "X-TABLE LAT"...); a decubitus or oblique view is not one (LLD, RLD: frontal, patient on a side)
LATERAL_WORDS = {"LL", "RL", "LAT", "LATERAL", "LLAT", "RLAT", "LLATERAL", "RLATERAL"}
NOT_LATERAL_WORDS = ("DECUB", "OBL", "LLD", "RLD", "LLO", "RLO")
# stored values shown from these percentiles of the film (``unit_range``): hot pixels or a burnt-in marker at
# full scale do not set the contrast
ROBUST_PERCENTILES = (0.1, 99.9)
MAX_TEXT = 64  # characters of a header text shown and written (DICOM's LO and PN allow 64)
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


class StudyError(Exception):
    """A file that cannot be triaged; ``reason`` is shown to the user in the row or on stderr."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass
class StudyInfo:
    """Header-level facts about a study, read without decoding pixels."""

    path: Path
    kind: str  # "dicom" or "raster"
    study_key: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    modality: str = ""
    view_position: str = ""
    rows: int = 0
    columns: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    study_uid: str = ""  # DICOM Study Instance UID ("" for raster files)


@dataclass
class LoadedStudy:
    """A decoded study: the gray image in display polarity (uint8, uint16 or float32 in [0, 1])."""

    info: StudyInfo
    image: np.ndarray


def check_pixels(path: Path, image: np.ndarray) -> np.ndarray:
    """Refuse images that cannot be a radiograph: wrong rank, tiny, non-finite or a single value."""
    if image.ndim != 2:
        raise StudyError(path, f"expected one 2-D gray image, got pixel array of shape {image.shape}")
    if min(image.shape) < MIN_SIDE:
        raise StudyError(path, f"image is too small ({image.shape[1]}x{image.shape[0]} px)")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise StudyError(path, "image contains NaN or infinite values")
    if image.min() == image.max():
        raise StudyError(path, "image is blank (every pixel has the same value)")
    return image


def special_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words ("" for a regular file)."""
    if stat.S_ISREG(mode):
        return ""
    return next((words for test, words in _SPECIAL_KINDS if test(mode)), "not a regular file")


def check_regular(path: Path, status: os.stat_result) -> None:
    """Refuse anything but a regular file (a FIFO would block the reader forever) and files over the cap."""
    kind = special_kind(status.st_mode)
    if kind:
        raise StudyError(path, f"not a regular file: {kind}")
    if status.st_size > MAX_FILE_BYTES:
        raise StudyError(
            path, f"file of {status.st_size / 2**20:,.0f} MB is larger than the {MAX_FILE_BYTES / 2**20:,.0f} MB limit"
        )


def open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file within the size cap (checked on the open file,
    so a file swapped for a FIFO after the scan cannot block: the open itself does not wait)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        check_regular(path, os.fstat(fd))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path) -> bytes:
    """The whole file, through :func:`open_regular`."""
    with open_regular(path) as handle:
        return handle.read()


def is_lateral(view_position: str) -> bool:
    """A lateral projection: outside the scope of a model trained on frontal (PA/AP) films."""
    words = [word for word in re.split(r"[^A-Z]+", view_position.upper()) if word]
    if any(word.startswith(NOT_LATERAL_WORDS) for word in words):
        return False
    return any(word in LATERAL_WORDS for word in words)


def header_text(value: object) -> str:
    """A header value as text to show and write: bytes decoded (never ``b'...'``), NULs and padding stripped,
    and a value longer than ``MAX_TEXT`` cut with an ellipsis and a short hash of the whole value, so that two
    long values stay apart and no CSV reader meets a megabyte cell."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="replace")
    else:
        text = str(value)
    text = text.replace("\x00", "").strip()
    if len(text) <= MAX_TEXT:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{text[: MAX_TEXT - 12]}…#{digest} ({len(text):,} characters)"


def content_key(path: Path, handle: BinaryIO | None = None) -> str:
    """A stable study key from the file's bytes, for files without a SOP Instance UID: from ``handle`` (read
    from its start) when given, so that the key comes from the same open file as the header, else the path."""
    if handle is None:
        with open_regular(path) as opened:
            return content_key(path, opened)
    digest = hashlib.sha1()
    handle.seek(0)
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    return "sha1:" + digest.hexdigest()


Stamp = tuple[int, int, int, int]


def file_stamp(path: Path) -> Stamp | None:
    """(size, mtime, inode, ctime) of ``path``, None when it cannot be looked at (the reader gives the reason).
    A file replaced by another (renamed over it, or rewritten with its old size and mtime restored, as
    ``rsync -a`` or ``cp -p`` do) has another stamp: the inode or the ctime, which no copy can set, differs."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns, status.st_ino, status.st_ctime_ns


def same_identity(a: StudyInfo, b: StudyInfo) -> bool:
    """Do two headers name the same study of the same patient (the fields a row and a review are kept by)?"""
    return (a.study_key, a.patient_id, a.patient_name, a.study_uid, a.accession) == (
        b.study_key,
        b.patient_id,
        b.patient_name,
        b.study_uid,
        b.accession,
    )


def unit_range(image: np.ndarray) -> np.ndarray:
    """Scale to float32 [0, 1] from the film's robust range (``robust_range``), clipped (used where the stored
    range carries no display meaning)."""
    data = image.astype(np.float32, copy=False)
    low, high = robust_range(data)
    if high <= low:
        return np.zeros_like(data)
    return np.clip((data - low) / (high - low), 0.0, 1.0)


def robust_range(data: np.ndarray) -> tuple[float, float]:
    """The values that set the contrast: the ``ROBUST_PERCENTILES`` of the pixels below the film's maximum (a
    burnt-in marker or hot pixels at full scale hold the maximum; scattered outliers fall outside the
    percentiles), from a subsample of at most ~1 M pixels; min and max when most pixels sit at the maximum."""
    low, high = float(data.min()), float(data.max())
    step = max(1, int(np.sqrt(data.size / 1_000_000)))
    sample = data[::step, ::step] if data.ndim == 2 else data.ravel()
    below = sample[sample < high]
    if below.size < sample.size // 2:
        return low, high
    robust_low, robust_high = (float(v) for v in np.percentile(below, ROBUST_PERCENTILES))
    return (robust_low, robust_high) if robust_high > robust_low else (low, high)
