"""Builders for the second round of hostile inputs (issue 12): files that used to crash, hang or score silently
wrong. The cases themselves are listed in tests/bad_inputs.py."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pydicom.uid import UID

from cxr_desktop.studies.synthetic import build_dataset, synthetic_chest

CHEST = synthetic_chest(256)
PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian


def _split_at_pixels(ds) -> tuple[bytes, bytes]:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    at = data.rindex(PIXEL_TAG)
    return data[:at], data[at:]


def nested_sequences(path: Path, depth: int = 3000) -> None:
    """A DICOM whose header holds ``depth`` sequences nested in each other (undefined lengths)."""
    head, pixels = _split_at_pixels(build_dataset(CHEST))
    open_sq = struct.pack("<HH", 0x0040, 0x0275) + b"SQ\x00\x00" + b"\xff\xff\xff\xff"
    open_item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close_item = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    close_sq = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    nested = (open_sq + open_item) * depth + (close_item + close_sq) * depth
    path.write_bytes(head + nested + pixels)


def rows_with_two_values(path: Path) -> None:
    ds = build_dataset(CHEST)
    ds.Rows = [256, 256]
    ds.save_as(path, enforce_file_format=True)


def frames_not_a_number(path: Path) -> None:
    ds = build_dataset(CHEST)
    ds.add_new(0x00280008, "IS", "1")
    head, pixels = _split_at_pixels(ds)
    path.write_bytes(head.replace(b"IS\x02\x001 ", b"IS\x04\x00abc ") + pixels)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def png_with_trailing_zeros(path: Path, megabytes: int) -> None:
    """A valid PNG followed by ``megabytes`` of zeros (sparse on disk: fast to make, no space used)."""
    path.write_bytes(cv2.imencode(".png", CHEST)[1].tobytes())
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size + megabytes * 1024 * 1024)


def dicom_with_trailing_zeros(path: Path, megabytes: int = 4) -> None:
    build_dataset(CHEST).save_as(path, enforce_file_format=True)
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size + megabytes * 1024 * 1024)


def sideways_jpeg(path: Path) -> None:
    """The chest stored rotated 90° counter-clockwise with EXIF orientation 6 (viewers rotate it back)."""
    image = Image.fromarray(np.rot90(CHEST, k=1).copy())
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, format="JPEG", quality=95, exif=exif)


def columns_changed(path: Path) -> None:
    """``Columns`` edited so that the stored pixel data is longer than rows x columns (a sheared image)."""
    ds = build_dataset(CHEST[:, :254].copy())
    ds.PixelData = CHEST.tobytes()  # 256 x 256 bytes under a 256 x 254 header: 512 bytes too many
    ds.save_as(path, enforce_file_format=True)


def ct_by_sop_class(path: Path) -> None:
    ds = build_dataset(CHEST, modality="", body_part="")
    del ds.Modality
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    ds.save_as(path, enforce_file_format=True)


def lateral_dicom(path: Path) -> None:
    build_dataset(CHEST, view_position="LL").save_as(path, enforce_file_format=True)
