"""Builders for the third round of hostile inputs (issue 22, item 14 and 15): valid files that were read wrong
and broken ones that got a misleading reason. The cases themselves are listed in tests/bad_inputs.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
from pydicom.data import get_testdata_file

from cxr_desktop.studies.synthetic import build_dataset, synthetic_chest

CHEST = synthetic_chest(256)
MARKER = (slice(8, 40), slice(8, 72))  # where a burnt-in "L" marker sits (~3 % of the film)


def chest_12bit(size: int = 256) -> np.ndarray:
    """A chest film on 12 bits that does not reach full scale (as detectors store them: ~200 to ~3,000)."""
    return (synthetic_chest(size).astype(np.uint16) * 11 + 200).astype(np.uint16)


def with_marker(pixels: np.ndarray, value: int) -> np.ndarray:
    """``pixels`` with a burnt-in marker at ``value`` (full scale) and 20 hot pixels at the same value."""
    marked = pixels.copy()
    marked[MARKER] = value
    rng = np.random.default_rng(0)
    marked[rng.integers(0, pixels.shape[0], 20), rng.integers(0, pixels.shape[1], 20)] = value
    return marked


def marker_dicom(path: Path) -> None:
    """12-bit DICOM without a window: its stored range stretched for display."""
    build_dataset(with_marker(chest_12bit(), 4095), bits_stored=12).save_as(path, enforce_file_format=True)


def hot_pixel_png(path: Path) -> None:
    """16-bit PNG of a 12-bit film with a marker and hot pixels at 65535."""
    ok, data = cv2.imencode(".png", with_marker(chest_12bit(), 65535))
    assert ok
    path.write_bytes(data.tobytes())


def inverse_lut_dicom(path: Path) -> None:
    """MONOCHROME2 stored as a negative and marked Presentation LUT Shape INVERSE: a valid, upright film."""
    ds = build_dataset(255 - CHEST, extra={"PresentationLUTShape": "INVERSE"})
    ds.save_as(path, enforce_file_format=True)


def view_dicom(view: str):
    def build(path: Path) -> None:
        build_dataset(CHEST, view_position=view).save_as(path, enforce_file_format=True)

    return build


def pydicom_file(name: str):
    def build(path: Path) -> None:
        shutil.copy(get_testdata_file(name), path)

    return build


def truncated_big_jpeg(path: Path) -> None:
    """A 1024^2 JPEG (~1 MB) cut in half: far more than the 64 KB tolerated after an end marker."""
    noise = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (1024, 1024), dtype=np.uint8), (0, 0), 1.0)
    ok, data = cv2.imencode(".jpg", cv2.addWeighted(cv2.resize(CHEST, (1024, 1024)), 0.7, noise, 0.3, 0))
    assert ok and len(data) > 128 * 1024
    path.write_bytes(data.tobytes()[: len(data) // 2])


def huge_patient_dicom(path: Path) -> None:
    """A 1 MB Patient ID and a 100 KB Patient Name (written as UN: longer than an explicit VR's 64 KB)."""
    ds = build_dataset(CHEST, patient_id="P" * 1_000_000)
    ds.PatientName = "N" * 100_000
    ds.save_as(path, enforce_file_format=True)
