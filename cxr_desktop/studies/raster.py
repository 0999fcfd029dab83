"""PNG and JPEG images of any depth and channel count -> one gray display-polarity image."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from cxr_desktop.studies.study import LoadedStudy, StudyError, StudyInfo, check_pixels, content_key, unit_range

log = logging.getLogger(__name__)

RASTER_SUFFIXES = {".png", ".jpg", ".jpeg"}
MAX_PIXELS = 64_000_000  # decompression-bomb guard: a 1024^2 radiograph is 1 M px, a 4300^2 detector 18 M px


def _header_size(path: Path) -> tuple[int, int, str]:
    """(width, height, mode) from the file header without decoding the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.format not in ("PNG", "JPEG", "MPO"):
                    raise StudyError(path, f"file holds {img.format} data, not PNG or JPEG")
                return img.width, img.height, img.mode
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise StudyError(path, "image dimensions exceed the decompression-bomb limit") from None
    except UnidentifiedImageError:
        raise StudyError(path, "not a readable PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise StudyError(path, f"not a readable PNG or JPEG image ({exc})") from None


def read_raster_header(path: Path, metadata: dict[str, str] | None = None) -> StudyInfo:
    """Size and identity of a PNG/JPEG; ``metadata`` (e.g. from the NIH CSV) fills patient and view."""
    width, height, mode = _header_size(path)
    if width * height > MAX_PIXELS:
        raise StudyError(path, f"image of {width}x{height} px is larger than the {MAX_PIXELS:,} px limit")
    meta = metadata or {}
    return StudyInfo(
        path=path,
        kind="raster",
        study_key=content_key(path),
        patient_id=meta.get("patient_id", ""),
        view_position=meta.get("view_position", "").upper(),
        modality=meta.get("modality", ""),
        rows=height,
        columns=width,
        extra={"mode": mode},
    )


def decode_gray(path: Path) -> np.ndarray:
    """Decode to a 2-D uint8 or uint16 gray array (RGB/RGBA converted by luminance, alpha dropped)."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise StudyError(path, f"cannot read file ({exc.strerror or exc})") from None
    if raw.size == 0:
        raise StudyError(path, "file is empty (0 bytes)")
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise StudyError(path, "image data is corrupt or truncated and could not be decoded")
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        elif channels == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif channels == 1:
            image = image[:, :, 0]
        else:
            raise StudyError(path, f"unsupported channel count {channels}")
    if image.dtype not in (np.uint8, np.uint16):
        raise StudyError(path, f"unsupported pixel type {image.dtype}")
    return image


def read_raster(path: Path, metadata: dict[str, str] | None = None) -> LoadedStudy:
    info = read_raster_header(path, metadata)
    image = check_pixels(path, decode_gray(path))
    if image.dtype == np.uint16:
        # 16-bit PNGs often hold 10-14 bit data: stretch the stored range for display
        image = unit_range(image)
    return LoadedStudy(info, image)
