"""The bad-input catalogue: every kind of file a study folder may hold that cannot (or can, surprisingly) be
triaged, generated at test time. Shared by tests/test_bad_inputs.py and scripts/robustness_table.py."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import hostile_inputs as hostile
import hostile_inputs_round3 as round3
import numpy as np
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import UID

from cxr_desktop.studies.synthetic import build_dataset, synthetic_chest, write_dicom

CHEST = synthetic_chest(256)


@dataclass(frozen=True)
class Case:
    kind: str
    name: str  # file name in the catalogue folder (str, or bytes for a non-UTF-8 name)
    build: Callable[[Path], None]
    reason: str  # expected substring of the row's error; "" = the study is scored
    note: str = ""


def _png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(data.tobytes())


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_size(path: Path, width: int, height: int, rows: int | None = None) -> None:
    """A valid PNG stream of ``width`` x ``height`` gray pixels, compressed row by row (a bomb is ~400 KB);
    with ``rows`` only that many rows are stored (a header that claims more than the data holds)."""
    squeeze = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * width
    body = b"".join(squeeze.compress(row) for _ in range(height if rows is None else rows)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")
    path.write_bytes(data)


def _dicom(path: Path, pixels: np.ndarray = CHEST, **kwargs) -> None:
    write_dicom(path, pixels, **kwargs)


def _dicom_edit(path: Path, edit: Callable, pixels: np.ndarray = CHEST, **kwargs) -> None:
    ds = build_dataset(pixels, **kwargs)
    edit(ds)
    ds.save_as(path, enforce_file_format=True)


def _truncated(path: Path, write: Callable[[Path], None], keep: float = 0.5) -> None:
    write(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _multiframe(ds) -> None:
    frames = np.stack([CHEST] * 3)
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()


def _mono_with_three_samples(ds) -> None:
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.PixelData = np.repeat(CHEST[:, :, None], 3, axis=2).tobytes()


def _rgb(ds) -> None:
    _mono_with_three_samples(ds)
    ds.PhotometricInterpretation = "RGB"


def _bad_syntax(ds) -> None:
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2 video: no decoder anywhere
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(64)])


def _permission(path: Path) -> None:
    _png(path, CHEST)
    path.chmod(0)


CASES: list[Case] = [
    Case("zero-byte PNG", "empty.png", lambda p: p.write_bytes(b""), "file is empty"),
    Case("zero-byte DICOM", "empty.dcm", lambda p: p.write_bytes(b""), "file is empty"),
    Case("truncated PNG", "truncated.png", lambda p: _truncated(p, lambda q: _png(q, CHEST)), "corrupt or truncated"),
    Case(
        "truncated JPEG",
        "truncated.jpg",
        lambda p: _truncated(p, lambda q: cv2.imwrite(str(q), CHEST), 0.3),
        "corrupt or truncated",
    ),  # fmt: skip
    Case("truncated DICOM (pixel data cut)", "truncated.dcm", lambda p: _truncated(p, _dicom, 0.6), "pixel data"),
    Case("text file named .png", "text.png", lambda p: p.write_text("hello, not an image"), "not a readable PNG"),
    Case("PDF named .dcm", "document.dcm", lambda p: p.write_bytes(b"%PDF-1.4\n%%EOF\n"), "DICOM"),
    Case("GIF named .png", "animation.png", lambda p: Image.fromarray(CHEST).save(p, format="GIF"), "GIF data"),
    Case(
        "DICOM without pixel data",
        "no_pixels.dcm",
        lambda p: _dicom_edit(p, lambda ds: delattr(ds, "PixelData")),
        "no pixel data",
    ),  # fmt: skip
    Case("multi-frame DICOM", "multiframe.dcm", lambda p: _dicom_edit(p, _multiframe), "multi-frame"),
    Case("CT DICOM", "ct.dcm", lambda p: _dicom(p, modality="CT", body_part="CHEST"), "modality CT"),
    Case("MR DICOM", "mr.dcm", lambda p: _dicom(p, modality="MR", body_part="CHEST"), "modality MR"),
    Case("ultrasound DICOM", "us.dcm", lambda p: _dicom(p, modality="US", body_part="CHEST"), "modality US"),
    Case("DX of another body part", "knee.dcm", lambda p: _dicom(p, body_part="KNEE"), "body part KNEE"),
    Case(
        "unsupported transfer syntax (MPEG2)",
        "mpeg2.dcm",
        lambda p: _dicom_edit(p, _bad_syntax),
        "1.2.840.10008.1.2.4.100",
    ),  # fmt: skip
    Case("1x1 image", "one_pixel.png", lambda p: _png(p, np.zeros((1, 1), np.uint8)), "too small"),
    Case(
        "20000x20000 PNG (decompression bomb)",
        "bomb.png",
        lambda p: _png_with_size(p, 20000, 20000),
        "decompression-bomb",
    ),  # fmt: skip
    Case(
        "PNG header claiming 60000x60000 px over 10 rows",
        "huge_claim.png",
        lambda p: _png_with_size(p, 60000, 60000, rows=10),
        "decompression-bomb",
    ),  # fmt: skip
    Case(
        "DICOM header claiming 65535x65535 px",
        "huge_claim.dcm",
        lambda p: _dicom_edit(p, lambda ds: setattr(ds, "Rows", 65535) or setattr(ds, "Columns", 65535)),
        "larger than",
    ),  # fmt: skip
    Case(
        "3-D pixel array (3 samples) in a MONOCHROME2 DICOM",
        "three_samples.dcm",
        lambda p: _dicom_edit(p, _mono_with_three_samples),
        "inconsistent",
    ),  # fmt: skip
    Case(
        "wrong photometric interpretation (PALETTE COLOR, no palette)",
        "palette.dcm",
        lambda p: _dicom(p, photometric="PALETTE COLOR"),
        "photometric interpretation",
    ),  # fmt: skip
    Case("NaN rescale slope", "nan_rescale.dcm", lambda p: _dicom(p, extra={"RescaleSlope": "NaN"}), "NaN"),
    Case(
        "infinite window width",
        "inf_window.dcm",
        lambda p: _dicom(p, extra={"WindowCenter": "100", "WindowWidth": "inf"}),
        "window",
    ),  # fmt: skip
    Case("image of a single value", "blank.png", lambda p: _png(p, np.full((256, 256), 7, np.uint8)), "blank"),
    Case("DICOM of a single value", "blank.dcm", lambda p: _dicom(p, np.full((256, 256), 900, np.uint16)), "blank"),
    Case(
        "symbolic-link loop",
        "loop_a.png",
        lambda p: (p.symlink_to(p.with_name("loop_b.png")), p.with_name("loop_b.png").symlink_to(p)),
        "symbolic links",
    ),  # fmt: skip
    Case("dangling symbolic link", "dangling.png", lambda p: p.symlink_to(p.with_name("gone.png")), "no longer exists"),
    Case(
        "file without read permission",
        "locked.png",
        _permission,
        "" if os.geteuid() == 0 else "permission denied",
        "run as root here, which reads any file; as a user: `permission denied` (see the next table)",
    ),  # fmt: skip
    # valid studies in unusual forms: scored, not refused (refusing them would lose a radiograph)
    Case(
        "16-bit PNG",
        "sixteen_bit.png",
        lambda p: _png(p, CHEST.astype(np.uint16) * 257),
        "",
        "full bit depth read; stored range stretched for display",
    ),  # fmt: skip
    Case(
        "RGBA PNG",
        "rgba.png",
        lambda p: _png(p, cv2.cvtColor(CHEST, cv2.COLOR_GRAY2BGRA)),
        "",
        "converted to gray by luminance; alpha dropped",
    ),  # fmt: skip
    Case("RGB secondary-capture DICOM", "rgb.dcm", lambda p: _dicom_edit(p, _rgb), "", "converted to gray"),
    Case(
        "JPEG named .png",
        "really_jpeg.png",
        lambda p: p.write_bytes(cv2.imencode(".jpg", CHEST)[1].tobytes()),
        "",
        "format taken from the content, not the name",
    ),  # fmt: skip
    Case(
        "non-UTF-8 file name",
        b"study_\xff\xfe.png",
        lambda p: _png(p, CHEST),
        "",
        "scored; the name is written with the undecodable bytes escaped",
    ),  # fmt: skip
    # round 2 (issue 12): files that used to crash the batch, hang the scan, cost without bound or score wrong
    Case("DICOM with 3,000 nested sequences", "nested.dcm", hostile.nested_sequences, "nested too deeply"),
    Case("DICOM with two Rows values", "two_rows.dcm", hostile.rows_with_two_values, "invalid Rows"),
    Case('DICOM with NumberOfFrames "abc"', "frames_abc.dcm", hostile.frames_not_a_number, "invalid NumberOfFrames"),
    Case("FIFO (named pipe) without an extension", "pipe", hostile.fifo, "not a regular file: a named pipe"),
    Case(
        "PNG followed by 5 GB of zeros (sparse file)",
        "five_gb.png",
        lambda p: hostile.png_with_trailing_zeros(p, 5 * 1024),
        "larger than the 256 MB limit",
    ),  # fmt: skip
    Case(
        "PNG followed by 20 MB of zeros",
        "trailing.png",
        lambda p: hostile.png_with_trailing_zeros(p, 20),
        "after the PNG end chunk",
    ),  # fmt: skip
    Case("DICOM followed by 4 MB of zeros", "trailing.dcm", hostile.dicom_with_trailing_zeros, "after the pixel data"),
    Case(
        "DICOM whose Columns do not match its pixel data (512 bytes too many)",
        "sheared.dcm",
        hostile.columns_changed,
        "does not match the header",
    ),  # fmt: skip
    Case(
        "CT by SOP Class UID, Modality and BodyPartExamined empty",
        "ct_by_sop_class.dcm",
        hostile.ct_by_sop_class,
        "SOP class CT Image Storage",
    ),  # fmt: skip
    Case(
        "JPEG stored sideways with EXIF orientation 6",
        "sideways.jpg",
        hostile.sideways_jpeg,
        "",
        "turned upright as its EXIF orientation says, then scored",
    ),  # fmt: skip
    Case(
        "lateral view (ViewPosition LL)",
        "lateral.dcm",
        hostile.lateral_dicom,
        "",
        "scored but outside the model's scope (frontal films): never flagged urgent, the row says so",
    ),  # fmt: skip
    Case(
        "Patient ID starting with = (CSV injection)",
        "formula_patient.dcm",
        lambda p: _dicom(p, patient_id='=HYPERLINK("http://x")'),
        "",
        "scored; the CSV cell is written as '=HYPERLINK… (a quote keeps spreadsheets from running it)",
    ),  # fmt: skip
    # round 3 (issue 22): valid files read wrong, broken ones with a misleading reason
    Case(
        "MONOCHROME2 with Presentation LUT Shape INVERSE",
        "inverse_lut.dcm",
        round3.inverse_lut_dicom,
        "",
        "shown and scored inverted as the header says (an upright film, not a negative)",
    ),  # fmt: skip
    *(
        Case(
            f"lateral view (ViewPosition {view})",
            f"lateral_{view.lower().replace(' ', '_')}.dcm",
            round3.view_dicom(view),
            "",
            "scored but outside the model's scope: never flagged urgent",
        )
        for view in ("LLAT", "RLAT", "LATERAL_LEFT")
    ),
    Case(
        "12-bit DICOM with a burnt-in marker and hot pixels at 4095",
        "marker_4095.dcm",
        round3.marker_dicom,
        "",
        "contrast from the 0.1-99.9 percentiles below full scale: the marker does not flatten the film",
    ),  # fmt: skip
    Case(
        "16-bit PNG with a burnt-in marker and hot pixels at 65535",
        "marker_65535.png",
        round3.hot_pixel_png,
        "",
        "contrast from the 0.1-99.9 percentiles below full scale",
    ),  # fmt: skip
    Case(
        "pydicom's SC_ybr_full_422_uncompressed.dcm",
        "ybr_full_422.dcm",
        round3.pydicom_file("SC_ybr_full_422_uncompressed.dcm"),
        "",
        "4:2:2 pixel data is 2 bytes a pixel; decoded to RGB once, then gray",
    ),  # fmt: skip
    Case(
        "truncated JPEG over 64 KB",
        "truncated_big.jpg",
        round3.truncated_big_jpeg,
        "corrupt or truncated JPEG",
    ),  # fmt: skip
    Case(
        "window center and width 1e30",
        "absurd_window.dcm",
        lambda p: _dicom(p, extra={"WindowCenter": "1e30", "WindowWidth": "1e30"}),
        "lies outside the pixel values",
    ),  # fmt: skip
    Case(
        "window width 1e12 (every pixel in one grey level)",
        "wide_window.dcm",
        lambda p: _dicom(p, extra={"WindowCenter": "100", "WindowWidth": "1e12"}),
        "far wider than the pixel values",
    ),  # fmt: skip
    Case(
        "RescaleSlope 1e36",
        "slope_1e36.dcm",
        lambda p: _dicom(p, extra={"RescaleSlope": "1e36"}),
        "implausible rescale slope",
    ),  # fmt: skip
    Case("DICOMDIR (a disc's index)", "DICOMDIR", round3.pydicom_file("DICOMDIR"), "a DICOMDIR"),
    Case(
        "1 MB Patient ID and 100 KB Patient Name",
        "huge_patient.dcm",
        round3.huge_patient_dicom,
        "",
        "scored; shown and written as the first 52 characters, an ellipsis, a hash and the length",
    ),  # fmt: skip
]


def case_path(folder: Path, case: Case) -> Path:
    name = os.fsdecode(case.name) if isinstance(case.name, bytes) else case.name
    return folder / name


def build_catalogue(folder: Path) -> dict[Path, Case]:
    """Write every case into ``folder``; returns path -> case."""
    folder.mkdir(parents=True, exist_ok=True)
    built = {}
    for case in CASES:
        path = case_path(folder, case)
        case.build(path)
        built[path] = case
    return built
