"""DICOM chest radiographs via pydicom: rescale, VOI window/LUT, MONOCHROME1 inversion, refusals.

Compressed transfer syntaxes decode through the permissive plugins (Pillow for JPEG baseline, GDCM, pyjpegls,
pylibjpeg-openjpeg, pylibjpeg-rle). Anything that is not a single-frame projection chest radiograph is
refused with a reason. Pixels that are not square (Pixel Spacing, Imager Pixel Spacing or Pixel Aspect Ratio
other than 1:1) are resampled to square ones (``studies.aspect``).
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder, pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

from cxr_desktop.studies.aspect import pixel_ratio, square_pixels
from cxr_desktop.studies.dicom_layout import check_pixel_layout
from cxr_desktop.studies.study import (
    MAX_PIXELS,
    LoadedStudy,
    StudyError,
    StudyInfo,
    check_pixels,
    content_key,
    header_text,
    open_regular,
    unit_range,
)

log = logging.getLogger(__name__)

RADIOGRAPH_MODALITIES = {"CR", "DX", "DR", "RG", "OT", ""}
CHEST_WORDS = ("CHEST", "THORAX", "LUNG", "TORAX", "THORAC")
# SOP classes that are never a chest radiograph, whatever Modality and BodyPartExamined say (or when empty)
_STORAGE = "1.2.840.10008.5.1.4.1.1."
NOT_RADIOGRAPH_SOP_CLASSES = {
    _STORAGE + suffix: modality
    for modality, suffixes in {
        "CT": ("2", "2.1", "2.2"),
        "MR": ("4", "4.1", "4.2", "4.3", "4.4"),
        "US": ("3.1", "6.1", "6.2"),
        "NM": ("20",),
        "PET": ("128", "128.1", "130"),
        "MG": ("1.2", "1.2.1"),
        "IO": ("1.3", "1.3.1"),
        "XA": ("12.1", "12.1.1"),
        "RF": ("12.2", "12.2.1"),
    }.items()
    for suffix in suffixes
}
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage: a DICOMDIR
MAX_RESCALE = 1e6  # |Rescale Slope| and |Rescale Intercept| beyond this (or a slope below 1/this) are refused
SIZE_FIELDS = {"Rows": 0, "Columns": 0, "SamplesPerPixel": 1, "NumberOfFrames": 1, "BitsAllocated": 0}


def _text(ds: Dataset, keyword: str) -> str:
    """A header value as text (``header_text``: decoded, capped with an ellipsis)."""
    return header_text(ds.get(keyword, ""))


def int_field(path: Path, ds: Dataset, keyword: str, default: int) -> int:
    """One whole number from the header; a list, text or negative value is refused with the reason."""
    value = ds.get(keyword, default)
    if value is None or value == "":
        return default
    try:
        if isinstance(value, pydicom.multival.MultiValue | list | tuple | bytes):
            raise TypeError("several values")
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        shown = str(value)[:40]
        raise StudyError(path, f"invalid {keyword} {shown!r} in the header (one whole number expected)") from None
    if number < 0:
        raise StudyError(path, f"invalid {keyword} {number} in the header (negative)")
    return number


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Files without a file-meta header (read with ``force=True``) get the syntax they were read with."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding if ds.original_encoding[0] is not None else (True, True)
        if not little:
            raise StudyError(getattr(ds, "filename", "?"), "big-endian DICOM without a file-meta header")
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian


def _parse(path: Path, handle: BinaryIO, with_pixels: bool) -> Dataset:
    try:
        ds = pydicom.dcmread(handle, force=True, stop_before_pixels=not with_pixels)
    except InvalidDicomError as exc:
        raise StudyError(path, f"not a readable DICOM file ({exc})") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, struct.error) as exc:
        raise StudyError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    meta = getattr(ds, "file_meta", None) or Dataset()
    if _text(meta, "MediaStorageSOPClassUID") == MEDIA_DIRECTORY or "DirectoryRecordSequence" in ds:
        raise StudyError(path, "a DICOMDIR (the index of a DICOM disc or folder), not an image: open its folder")
    if len(ds) == 0 or ("SOPClassUID" not in ds and "Rows" not in ds and "Modality" not in ds):
        raise StudyError(path, "not a DICOM file (no DICOM elements found)")
    return ds


def read_dataset(path: Path, with_pixels: bool) -> Dataset:
    """The header, checked (chest radiograph, sizes, pixel-data layout), then with ``with_pixels`` the whole
    dataset: the checks run on the raw bytes before pydicom parses the pixels or anything after them."""
    return read_identified(path, with_pixels)[0]


def read_identified(path: Path, with_pixels: bool) -> tuple[Dataset, str]:
    """:func:`read_dataset` and the study key, both from one open file (a file replaced meanwhile cannot
    give one file's header with another's key or pixels): the SOP Instance UID, else the content hash."""
    with open_regular(path) as handle:
        ds = _parse(path, handle, with_pixels=False)
        sizes = check_is_chest_radiograph(path, ds)
        check_pixel_layout(path, ds, handle, os.fstat(handle.fileno()).st_size, sizes)
        sop_uid = _text(ds, "SOPInstanceUID")
        key = f"sop:{sop_uid}" if sop_uid else content_key(path, handle)
        if with_pixels:
            handle.seek(0)
            ds = _parse(path, handle, with_pixels=True)
        return ds, key


def _check_sop_class(path: Path, ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    for uid in (_text(ds, "SOPClassUID"), str(meta.get("MediaStorageSOPClassUID", "")) if meta else ""):
        if uid in NOT_RADIOGRAPH_SOP_CLASSES:
            name = UID(uid).name if UID(uid).is_valid else uid
            raise StudyError(path, f"not a chest radiograph: SOP class {name} ({NOT_RADIOGRAPH_SOP_CLASSES[uid]})")


def check_is_chest_radiograph(path: Path, ds: Dataset) -> dict[str, int]:
    """Modality, SOP class, body part, frames and size; returns the validated size fields."""
    modality = _text(ds, "Modality").upper()
    if modality not in RADIOGRAPH_MODALITIES:
        raise StudyError(path, f"not a chest radiograph: modality {modality}")
    _check_sop_class(path, ds)
    body_part = _text(ds, "BodyPartExamined").upper()
    if body_part and not any(word in body_part for word in CHEST_WORDS):
        raise StudyError(path, f"not a chest radiograph: body part {body_part}")
    sizes = {keyword: int_field(path, ds, keyword, default) for keyword, default in SIZE_FIELDS.items()}
    frames = sizes["NumberOfFrames"] or 1
    if frames > 1:
        raise StudyError(path, f"multi-frame DICOM ({frames} frames) is not supported")
    sizes["NumberOfFrames"] = frames
    rows, cols = sizes["Rows"], sizes["Columns"]
    if rows * cols > MAX_PIXELS:
        raise StudyError(path, f"image of {cols}x{rows} px is larger than the {MAX_PIXELS:,} px limit")
    return sizes


def dicom_info(path: Path, ds: Dataset, key: str) -> StudyInfo:
    return StudyInfo(
        path=path,
        kind="dicom",
        study_key=key,
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        accession=_text(ds, "AccessionNumber"),
        modality=_text(ds, "Modality"),
        view_position=view_position(ds),
        rows=int_field(path, ds, "Rows", 0),
        columns=int_field(path, ds, "Columns", 0),
        study_uid=_text(ds, "StudyInstanceUID"),
    )


def view_position(ds: Dataset) -> str:
    """ViewPosition, or "LATERAL" when only the view code sequence says the projection is lateral."""
    view = _text(ds, "ViewPosition").upper()
    if view:
        return view
    for item in ds.get("ViewCodeSequence", None) or []:
        meaning = str(item.get("CodeMeaning", "")).lower()
        if "lateral" in meaning and "decubitus" not in meaning and "oblique" not in meaning:
            return "LATERAL"
    return ""


def read_dicom_header(path: Path) -> StudyInfo:
    """Header only (no pixel decoding): metadata plus the chest-radiograph and layout checks."""
    return dicom_info(path, *read_identified(path, with_pixels=False))


def _first(value: object) -> float:
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        value = value[0]
    return float(value)


def _to_display(path: Path, ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Stored values -> float32 [0, 1] in display polarity (rescale, VOI, MONOCHROME1 or Presentation LUT
    Shape INVERSE inversion)."""
    values = _rescaled(path, ds, stored)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        if not (np.isfinite(center) and np.isfinite(width)) or width < 1:
            raise StudyError(path, f"invalid window center/width ({center}, {width})")
        _check_window(path, values, center, width)
        # DICOM PS3.3 C.11.2.1.2 linear window
        display = np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
    elif "VOILUTSequence" in ds:
        display = unit_range(apply_voi_lut(values, ds))
    elif int_field(path, ds, "BitsStored", 8) <= 8 and values.min() >= 0 and values.max() <= 255:
        display = values / 255.0
    else:
        display = unit_range(values)
    if inverted_for_display(ds):
        display = 1.0 - display
    return display.astype(np.float32, copy=False)


def inverted_for_display(ds: Dataset) -> bool:
    """Does the film show with low values bright? MONOCHROME1, or a Presentation LUT Shape of INVERSE (which
    a DX MONOCHROME1 file also carries: it is inverted once, not twice)."""
    photometric = _text(ds, "PhotometricInterpretation").upper()
    return photometric == "MONOCHROME1" or _text(ds, "PresentationLUTShape").upper() == "INVERSE"


def _rescaled(path: Path, ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """The modality LUT (Rescale Slope and Intercept) applied; a slope or intercept that is not finite, a zero
    slope or one far outside any detector's (``MAX_RESCALE``) is refused with its value."""
    slope, intercept = _first(ds.get("RescaleSlope", 1) or 1), _first(ds.get("RescaleIntercept", 0) or 0)
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise StudyError(path, "invalid rescale slope/intercept (NaN or infinite)")
    if slope == 0 or not 1 / MAX_RESCALE <= abs(slope) <= MAX_RESCALE or abs(intercept) > MAX_RESCALE:
        raise StudyError(
            path, f"implausible rescale slope {slope:g}, intercept {intercept:g} (slope magnitude 1e-6 to 1e6 allowed)"
        )
    return apply_modality_lut(stored, ds).astype(np.float32)


def _check_window(path: Path, values: np.ndarray, center: float, width: float) -> None:
    """A window that misses every pixel value, or is so wide that the whole film falls in one grey level, is
    refused with its values (it would show, and score, as a blank film)."""
    low, high = float(values.min()), float(values.max())
    if center + width / 2 < low or center - width / 2 > high:
        raise StudyError(
            path, f"window center {center:g} / width {width:g} lies outside the pixel values ({low:g} to {high:g})"
        )
    if (high - low) / width < 2 / 255:
        raise StudyError(
            path, f"window width {width:g} is far wider than the pixel values ({low:g} to {high:g}): one grey level"
        )


def _decode(ds: Dataset) -> np.ndarray:
    """The stored pixel array. JPEG baseline goes to Pillow where pydicom offers it: the same pixels as
    GDCM, 4x faster here, and it releases the GIL (GDCM holds it ~24 ms per 1024^2 image, which the GUI
    thread feels while a folder is scored)."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax == JPEGBaseline8Bit and "pillow" in get_decoder(JPEGBaseline8Bit).available_plugins:
        return pixel_array(ds, decoding_plugin="pillow")
    return ds.pixel_array


def read_dicom(path: Path) -> LoadedStudy:
    """Decode one DICOM chest radiograph to a float32 [0, 1] display-polarity image, with its header."""
    ds, key = read_identified(path, with_pixels=True)
    return LoadedStudy(dicom_info(path, ds, key), _display_pixels(path, ds))


def read_dicom_pixels(path: Path) -> np.ndarray:
    """The display image alone, for a study whose header was read already (no second ``StudyInfo``)."""
    return _display_pixels(path, read_dataset(path, with_pixels=True))


def _display_pixels(path: Path, ds: Dataset) -> np.ndarray:
    """The display image with square pixels (``studies.aspect``: a stored 2:1 pixel is shown 2:1)."""
    ratio = pixel_ratio(path, ds)
    return square_pixels(_decoded_display(path, ds), ratio)


def _decoded_display(path: Path, ds: Dataset) -> np.ndarray:
    if "PixelData" not in ds:
        raise StudyError(path, "DICOM has no pixel data")
    photometric = _text(ds, "PhotometricInterpretation").upper()
    samples = int_field(path, ds, "SamplesPerPixel", 1) or 1
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422"):
        raise StudyError(path, f"unsupported photometric interpretation {photometric or '(none)'}")
    if photometric.startswith("MONOCHROME") and samples != 1:
        raise StudyError(path, f"{photometric} with {samples} samples per pixel is inconsistent")
    _ensure_transfer_syntax(ds)
    try:
        stored = _decode(ds)
    except NotImplementedError as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        raise StudyError(path, f"cannot decode transfer syntax {syntax}: {exc}") from None
    except (ValueError, RuntimeError, AttributeError, TypeError, OSError, KeyError) as exc:
        raise StudyError(path, f"cannot decode pixel data ({type(exc).__name__}: {exc})") from None
    if samples == 3 and stored.ndim == 3 and stored.shape[-1] == 3:
        # pydicom 3 gives YBR_FULL and YBR_FULL_422 as RGB already (as_rgb): converting again would be wrong
        stored = stored.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        display = unit_range(stored) if stored.max() > 255 else stored / 255.0
        return check_pixels(path, display.astype(np.float32))
    if stored.ndim != 2:
        raise StudyError(path, f"expected one 2-D image, got pixel array of shape {stored.shape}")
    check_pixels(path, stored)
    return check_pixels(path, _to_display(path, ds, stored))
