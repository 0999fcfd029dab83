"""Checks of where a DICOM file's pixel data lies, made on the raw bytes before pydicom parses it.

After a header read that stopped before the pixels, the file is positioned at the (7FE0,0010) element: its
stated length must fit the file (a truncated file), match rows x columns x samples x bits for uncompressed
syntaxes (a header edited so that the pixels would be sheared), and little may follow it (megabytes of
trailing zeros would otherwise be parsed as empty elements at about half a second per megabyte).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from cxr_desktop.studies.study import StudyError

PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) Pixel Data, little endian
TRAILING_PADDING_TAG = b"\xfc\xff\xfc\xff"  # (FFFC,FFFC) Data Set Trailing Padding: legitimate after the pixels
EXPLICIT_PIXEL_VRS = (b"OB", b"OW", b"UN", b"OV")
TRAILING_TOLERANCE = 64 * 1024  # bytes after the pixel data that are read without complaint
MAX_FRAGMENTS = 100_000
UNDEFINED = 0xFFFFFFFF


def _syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


def _is_encapsulated(ds: Dataset) -> bool:
    syntax = _syntax(ds)
    if not syntax:
        return False  # no file meta: read as implicit/explicit little endian
    try:
        return bool(UID(syntax).is_encapsulated)
    except (ValueError, AttributeError):
        return False


def expected_pixel_bytes(ds: Dataset, sizes: dict[str, int]) -> int:
    """Bytes that rows x columns x samples x frames x bits allocated take (before the even-length pad)."""
    samples = sizes["SamplesPerPixel"]
    if samples == 3 and str(ds.get("PhotometricInterpretation", "")).strip().upper() == "YBR_FULL_422":
        samples = 2  # 4:2:2: each pair of pixels stores two Y values, one Cb and one Cr (PS3.3 C.7.6.3.1.2)
    bits = sizes["Rows"] * sizes["Columns"] * samples * sizes["NumberOfFrames"]
    return (bits * sizes["BitsAllocated"] + 7) // 8


def check_pixel_layout(path, ds: Dataset, handle: BinaryIO, file_size: int, sizes: dict[str, int]) -> None:
    """``handle`` is where the header read stopped; ``sizes`` holds the validated Rows, Columns,
    SamplesPerPixel, NumberOfFrames and BitsAllocated. Raises StudyError with the reason."""
    if _syntax(ds) in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian):
        return  # deflated bytes do not map to file offsets; big endian is retired and left to pydicom
    start = handle.tell()
    head = handle.read(12)
    if len(head) < 8 or head[:4] != PIXEL_TAG:
        return  # no pixel data element here (refused later with its own reason)
    explicit = head[4:6] in EXPLICIT_PIXEL_VRS
    if explicit and len(head) < 12:
        raise StudyError(path, "pixel data is truncated (the element header is cut)")
    length = struct.unpack("<I", head[8:12] if explicit else head[4:8])[0]
    value_start = start + (12 if explicit else 8)
    if length == UNDEFINED:
        end = _encapsulated_end(path, handle, value_start, file_size)
    else:
        end = value_start + length
        if end > file_size:
            raise StudyError(
                path, f"pixel data is truncated ({max(0, file_size - value_start):,} of {length:,} bytes present)"
            )
        if not _is_encapsulated(ds) and sizes.get("BitsAllocated"):
            _check_length(path, length, sizes, expected_pixel_bytes(ds, sizes))
    _check_trailing(path, handle, end, file_size)


def _check_length(path, length: int, sizes: dict[str, int], expected: int) -> None:
    if length in (expected, expected + 1):  # one pad byte makes an odd length even
        return
    raise StudyError(
        path,
        f"pixel data length {length:,} bytes does not match the header ({sizes['Rows']} rows x "
        f"{sizes['Columns']} columns x {sizes['SamplesPerPixel']} samples x {sizes['BitsAllocated']} bits = "
        f"{expected:,} bytes)",
    )


def _encapsulated_end(path, handle: BinaryIO, pos: int, file_size: int) -> int:
    """The offset just after the fragments of encapsulated (compressed) pixel data."""
    handle.seek(pos)
    for _ in range(MAX_FRAGMENTS):
        head = handle.read(8)
        if not head:
            return pos  # the sequence delimiter is missing at the end of the file; pydicom tolerates it
        if len(head) < 8:
            raise StudyError(path, "compressed pixel data is truncated")
        group, element, length = struct.unpack("<HHI", head)
        if (group, element) == (0xFFFE, 0xE0DD):
            return pos + 8
        if (group, element) != (0xFFFE, 0xE000) or length == UNDEFINED:
            raise StudyError(path, "compressed pixel data is malformed (a fragment item was expected)")
        pos += 8 + length
        if pos > file_size:
            raise StudyError(path, "compressed pixel data is truncated")
        handle.seek(pos)
    raise StudyError(path, f"compressed pixel data has more than {MAX_FRAGMENTS:,} fragments")


def _check_trailing(path, handle: BinaryIO, end: int, file_size: int) -> None:
    extra = file_size - end
    if extra <= TRAILING_TOLERANCE:
        return
    handle.seek(end)
    if handle.read(4) == TRAILING_PADDING_TAG:
        return
    raise StudyError(
        path, f"{extra:,} bytes of unexpected data after the pixel data (at most {TRAILING_TOLERANCE:,} are read)"
    )
