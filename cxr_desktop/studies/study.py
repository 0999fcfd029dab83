"""Plain data for one study (one image file) and the error every reader raises."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MIN_SIDE = 32  # smaller images cannot be a radiograph worth scoring


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


def content_key(path: Path) -> str:
    """A stable study key from the file's bytes, for files without a SOP Instance UID."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha1:" + digest.hexdigest()


def unit_range(image: np.ndarray) -> np.ndarray:
    """Min-max scale to float32 [0, 1] (used where the stored range carries no display meaning)."""
    data = image.astype(np.float32, copy=False)
    low, high = float(data.min()), float(data.max())
    if high <= low:
        return np.zeros_like(data)
    return (data - low) / (high - low)
