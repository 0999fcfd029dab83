"""Synthetic chest-like images and real DICOM files written with pydicom.

Used by tests (and the self-test) for edge cases that real data lack; the demo worklist is real NIH images
(``resources/demo``). Every file is labelled "SYNTHETIC DEMO" in its patient name and series description.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

DX_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1.1")
SYNTHETIC_LABEL = "SYNTHETIC DEMO"


def synthetic_chest(size: int = 256, heart_ratio: float = 0.45, seed: int = 0) -> np.ndarray:
    """A crude PA chest in display polarity (uint8): dark lungs, bright mediastinum, a heart of given width."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 200, dtype=np.float32)
    c = size // 2
    for side in (-1, 1):
        cv2.ellipse(img, (c + side * size // 5, int(size * 0.45)), (size // 7, size // 4), 0, 0, 360, 60, -1)
    heart_w = int(size * heart_ratio / 2)
    cv2.ellipse(img, (c + size // 20, int(size * 0.62)), (heart_w, size // 7), 0, 0, 360, 215, -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), size / 128)
    return np.clip(img, 0, 255).astype(np.uint8)


def build_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    modality: str = "DX",
    patient_name: str = SYNTHETIC_LABEL,
    patient_id: str = "DEMO-0001",
    view_position: str = "PA",
    body_part: str = "CHEST",
    extra: dict[str, object] | None = None,
) -> Dataset:
    """An uncompressed single-frame DICOM dataset around ``pixels`` (uint8 or uint16, 2-D)."""
    if pixels.dtype not in (np.uint8, np.uint16, np.int16):
        raise ValueError(f"pixels must be uint8, uint16 or int16, got {pixels.dtype}")
    meta = FileMetaDataset()
    sop_class = DX_IMAGE_STORAGE if modality in ("DX", "CR") else SecondaryCaptureImageStorage
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.StudyDate = date.today().strftime("%Y%m%d")
    ds.StudyTime = "080000"
    ds.AccessionNumber = "DEMO"
    ds.SeriesDescription = SYNTHETIC_LABEL
    if view_position:
        ds.ViewPosition = view_position
    if body_part:
        ds.BodyPartExamined = body_part
    bits_alloc = 8 if pixels.dtype == np.uint8 else 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.BitsAllocated = bits_alloc
    ds.BitsStored = bits_stored or bits_alloc
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def write_dicom(path: str | Path, pixels: np.ndarray, transfer_syntax: UID | None = None, **kwargs) -> Path:
    """Write ``build_dataset(pixels, **kwargs)`` as a DICOM Part 10 file, compressed when a (lossless)
    ``transfer_syntax`` such as RLE, JPEG-LS or JPEG 2000 is given (the same codec plugins then decode it)."""
    path = Path(path)
    ds = build_dataset(pixels, **kwargs)
    if transfer_syntax is not None and transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax, np.ascontiguousarray(pixels))
    ds.save_as(path, enforce_file_format=True)
    return path
