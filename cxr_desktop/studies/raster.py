"""PNG and JPEG images of any depth and channel count -> one gray display-polarity image.

The file is read once, in one read, through :func:`open_regular` (regular files within the size cap only); a
PNG is used up to its end chunk and refused when much follows it, a JPEG when its end marker is not near the
end of the file. EXIF orientation is applied, as every viewer does. Pixels that the file says are not square
(a PNG's pHYs chunk, a JPEG's JFIF density: horizontal and vertical pixels per unit differ) are resampled to
square ones, as for DICOM (``studies.aspect``), before the orientation is applied.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from cxr_desktop.studies.aspect import MAX_RATIO, square_pixels
from cxr_desktop.studies.study import (
    MAX_PIXELS,
    LoadedStudy,
    StudyError,
    StudyInfo,
    check_pixels,
    open_regular,
    unit_range,
)

log = logging.getLogger(__name__)

RASTER_SUFFIXES = {".png", ".jpg", ".jpeg"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_END = b"\xff\xd9"
JPEG_SCAN = b"\xff\xda"  # start of scan: entropy-coded data follows (it never holds 0xFFDA)
TRAILING_TOLERANCE = 64 * 1024  # bytes after the image's end marker that are accepted
MAX_PNG_CHUNKS = 1_000_000
EXIF_ORIENTATION = 0x0112


def _png_end(path: Path, data: bytes) -> int | None:
    """Offset just after the IEND chunk, found by walking the chunk headers in memory; None when the chunks
    run out first (a truncated file: the decoder says so)."""
    pos = len(PNG_SIGNATURE)
    for _ in range(MAX_PNG_CHUNKS):
        if pos + 8 > len(data):
            return None
        length, kind = struct.unpack_from(">I4s", data, pos)
        pos += 12 + length
        if kind == b"IEND":
            return pos if pos <= len(data) else None
    raise StudyError(path, f"PNG has more than {MAX_PNG_CHUNKS:,} chunks")


def read_image_bytes(path: Path) -> bytes:
    """The bytes of the image in one read of the file (within the size cap), refusing trailing data past
    the end marker beyond the tolerance."""
    with open_regular(path) as handle:
        data = handle.read()
    if data.startswith(PNG_SIGNATURE):
        end = _png_end(path, data)
        if end is not None:
            _refuse_trailing(path, len(data) - end, "the PNG end chunk (IEND)")
            return data[:end] if end < len(data) else data
    elif len(data) > TRAILING_TOLERANCE and data.startswith(b"\xff\xd8"):
        # a JPEG: its end marker must be near the end of the file
        if data.rfind(JPEG_END, len(data) - TRAILING_TOLERANCE) < 0:
            # no end marker after the last scan's start: the file was cut (an earlier one is a thumbnail's)
            if data.rfind(JPEG_END) < data.rfind(JPEG_SCAN):
                raise StudyError(path, "corrupt or truncated JPEG (the file ends before its end-of-image marker)")
            _refuse_trailing(path, len(data), "a JPEG end marker")
    return data


def _refuse_trailing(path: Path, extra: int, marker: str) -> None:
    if extra > TRAILING_TOLERANCE:
        raise StudyError(
            path, f"{extra:,} bytes of unexpected data after {marker} (at most {TRAILING_TOLERANCE:,} are read)"
        )


def _orientation(img: Image.Image) -> int:
    """EXIF orientation 1-8 (1 when absent or invalid). A PNG's EXIF is used only when its chunk comes
    before the pixels: looking further would decode the whole image."""
    if img.format not in ("JPEG", "MPO") and "exif" not in img.info:
        return 1
    try:
        value = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except (TypeError, ValueError) as exc:
        log.warning("ignoring an unreadable EXIF orientation (%s)", type(exc).__name__)
        return 1
    return value if 1 <= value <= 8 else 1


def _density(img: Image.Image) -> tuple[float, float] | None:
    """(horizontal, vertical) pixels per unit as the file states them, or None when it does not."""
    for key in ("jfif_density", "dpi", "aspect"):  # JPEG's JFIF; PNG's pHYs in metres ("dpi") or unitless
        value = img.info.get(key)
        if isinstance(value, tuple) and len(value) == 2:
            return float(value[0]), float(value[1])
    return None


def _pixel_ratio(path: Path, img: Image.Image) -> float:
    """A stored pixel's height over its width (1.0 when square or unstated): horizontal over vertical density."""
    density = _density(img)
    if density is None or min(density) <= 0:  # 0 means "not stated" (JFIF 0/0, a pHYs of zeros)
        return 1.0
    ratio = density[0] / density[1]
    if not 1 / MAX_RATIO <= ratio <= MAX_RATIO:
        raise StudyError(
            path, f"pixel density {density[0]:g}x{density[1]:g} gives a pixel aspect ratio outside 1:4 to 4:1"
        )
    return ratio


def _header(path: Path, data: bytes) -> tuple[int, int, str, int, float]:
    """(width, height, mode, EXIF orientation, pixel height/width) from the header without decoding the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in ("PNG", "JPEG", "MPO"):
                    raise StudyError(path, f"file holds {img.format} data, not PNG or JPEG")
                return img.width, img.height, img.mode, _orientation(img), _pixel_ratio(path, img)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise StudyError(
            path, f"image dimensions exceed the decompression-bomb limit ({Image.MAX_IMAGE_PIXELS:,} px)"
        ) from None
    except UnidentifiedImageError:
        raise StudyError(path, "not a readable PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise StudyError(path, f"not a readable PNG or JPEG image ({exc})") from None


def _info(path: Path, data: bytes, metadata: dict[str, str] | None) -> tuple[StudyInfo, int]:
    width, height, mode, orientation, ratio = _header(path, data)
    if width * height > MAX_PIXELS:
        raise StudyError(path, f"image of {width}x{height} px is larger than the {MAX_PIXELS:,} px limit")
    if orientation >= 5:  # stored sideways: shown (and scored) with width and height swapped
        width, height = height, width
    meta = metadata or {}
    info = StudyInfo(
        path=path,
        kind="raster",
        study_key="sha1:" + hashlib.sha1(data).hexdigest(),
        patient_id=meta.get("patient_id", ""),
        view_position=meta.get("view_position", "").upper(),
        modality=meta.get("modality", ""),
        rows=height,
        columns=width,
        extra={"mode": mode, **({"exif_orientation": str(orientation)} if orientation != 1 else {})},
    )
    if ratio != 1.0:
        info.extra["pixel_aspect"] = f"{ratio:.6g}"
    return info, orientation


def read_raster_header(path: Path, metadata: dict[str, str] | None = None) -> StudyInfo:
    """Size and identity of a PNG/JPEG; ``metadata`` (e.g. from the NIH CSV) fills patient and view."""
    return _info(path, read_image_bytes(path), metadata)[0]


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """The stored image turned as EXIF orientation ``orientation`` (1-8) says a viewer must show it."""
    turns = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: a.T,
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a.T[::-1, ::-1],
        8: lambda a: np.rot90(a, k=1),
    }
    turn = turns.get(orientation)
    return image if turn is None else np.ascontiguousarray(turn(image))


def decode_gray(path: Path, data: bytes | None = None) -> np.ndarray:
    """Decode to a 2-D uint8 or uint16 gray array (RGB/RGBA converted by luminance, alpha dropped)."""
    raw = np.frombuffer(read_image_bytes(path) if data is None else data, dtype=np.uint8)
    if raw.size == 0:
        raise StudyError(path, "file is empty (0 bytes)")
    try:
        image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise StudyError(path, f"image data could not be decoded ({str(exc).strip().splitlines()[-1]})") from None
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


def _pixels(path: Path, data: bytes, orientation: int, ratio: float = 1.0) -> np.ndarray:
    image = check_pixels(path, apply_orientation(square_pixels(decode_gray(path, data), ratio), orientation))
    if image.dtype == np.uint16:
        # 16-bit PNGs often hold 10-14 bit data: stretch the stored range for display
        image = unit_range(image)
    return image


def read_raster(path: Path, metadata: dict[str, str] | None = None) -> LoadedStudy:
    """Header and pixels from one read of the file."""
    data = read_image_bytes(path)
    info, orientation = _info(path, data, metadata)
    return LoadedStudy(info, _pixels(path, data, orientation, float(info.extra.get("pixel_aspect", 1.0))))


def read_raster_pixels(path: Path, orientation: int = 1, ratio: float = 1.0) -> np.ndarray:
    """The display image alone, for a study whose header was read already (its EXIF orientation and pixel
    aspect ratio): one read and one decode, no hash and no header parse."""
    return _pixels(path, read_image_bytes(path), orientation, ratio)
