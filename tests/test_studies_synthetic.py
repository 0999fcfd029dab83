"""Edge cases the real files lack: bit depths, photometric interpretations, compression, bad files."""

import cv2
import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from cxr_desktop.studies.reader import read_study
from cxr_desktop.studies.scan import scan
from cxr_desktop.studies.study import StudyError
from cxr_desktop.studies.synthetic import build_dataset, synthetic_chest, write_dicom

BASE = synthetic_chest(128, seed=2)


@pytest.mark.parametrize("bits", [10, 12, 14, 16])
def test_high_bit_depth_monochrome2(tmp_path, bits):
    pixels = (BASE.astype(np.uint32) * ((1 << bits) - 1) // 255).astype(np.uint16)
    image = read_study(write_dicom(tmp_path / "a.dcm", pixels, bits_stored=bits)).image
    expected = (BASE - BASE.min()) / float(BASE.max() - BASE.min())
    # the stored range is stretched from its 0.1 to 99.9 percentiles (studies.study.robust_range): ~1 % off min-max
    assert np.abs(image - expected).max() < 0.02


def test_monochrome1_is_inverted(tmp_path):
    mono2 = read_study(write_dicom(tmp_path / "m2.dcm", BASE)).image
    mono1 = read_study(write_dicom(tmp_path / "m1.dcm", 255 - BASE, photometric="MONOCHROME1")).image
    assert np.abs(mono1 - mono2).max() < 1e-6


def test_rescale_and_window_from_header(tmp_path):
    pixels = BASE.astype(np.uint16) * 16
    extra = {"RescaleSlope": 2, "RescaleIntercept": -100, "WindowCenter": 2000, "WindowWidth": 4000}
    image = read_study(write_dicom(tmp_path / "w.dcm", pixels, bits_stored=12, extra=extra)).image
    values = pixels.astype(np.float32) * 2 - 100
    expected = np.clip((values - 1999.5) / 3999 + 0.5, 0, 1)
    assert np.abs(image - expected).max() < 1e-5


def test_nan_rescale_is_refused(tmp_path):
    path = write_dicom(tmp_path / "n.dcm", BASE, extra={"RescaleSlope": "NaN", "RescaleIntercept": 0})
    with pytest.raises(StudyError, match="rescale"):
        read_study(path)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_transfer_syntaxes(tmp_path, syntax):
    ds = build_dataset(BASE)
    ds.compress(syntax, BASE)
    path = tmp_path / "c.dcm"
    ds.save_as(path, enforce_file_format=True)
    image = read_study(path).image
    assert np.abs(image * 255 - BASE).max() < 0.51


@pytest.mark.parametrize(
    ("modality", "body", "reason"),
    [("MR", "CHEST", "modality MR"), ("US", "", "modality US"), ("DX", "KNEE", "body part KNEE")],
)
def test_non_chest_radiographs_are_refused(tmp_path, modality, body, reason):
    path = write_dicom(tmp_path / "x.dcm", BASE, modality=modality, body_part=body)
    with pytest.raises(StudyError, match=reason):
        read_study(path)


def test_multiframe_is_refused(tmp_path):
    path = write_dicom(tmp_path / "mf.dcm", BASE, extra={"NumberOfFrames": 3})
    with pytest.raises(StudyError, match="multi-frame"):
        read_study(path)


def test_png_variants(tmp_path):
    cv2.imwrite(str(tmp_path / "g16.png"), BASE.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "rgb.png"), cv2.cvtColor(BASE, cv2.COLOR_GRAY2BGR))
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(BASE, cv2.COLOR_GRAY2BGRA))
    cv2.imwrite(str(tmp_path / "g.jpg"), BASE, [cv2.IMWRITE_JPEG_QUALITY, 100])
    ref = BASE.astype(np.float32) / 255
    for name in ("rgb.png", "rgba.png"):
        assert np.array_equal(read_study(tmp_path / name).image, BASE)
    sixteen = read_study(tmp_path / "g16.png").image
    assert np.abs(sixteen - (ref - ref.min()) / (ref.max() - ref.min())).max() < 0.02  # robust stretch, as above
    assert np.abs(read_study(tmp_path / "g.jpg").image.astype(int) - BASE).max() <= 3


def test_bad_files_give_reasons_and_do_not_stop_the_scan(tmp_path):
    cv2.imwrite(str(tmp_path / "good.png"), BASE)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "doc.dcm").write_bytes(b"%PDF-1.4 not a dicom")
    (tmp_path / "notes.txt").write_text("ignored: not an image")
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((1, 1), np.uint8))
    cv2.imwrite(str(tmp_path / "flat.png"), np.full((64, 64), 9, np.uint8))
    truncated = (tmp_path / "good.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    nested = tmp_path / "sub" / "deeper"
    nested.mkdir(parents=True)
    write_dicom(nested / "ok.dcm", BASE)

    result = scan([tmp_path])
    assert sorted(s.path.name for s in result.studies) == ["cut.png", "flat.png", "good.png", "ok.dcm", "tiny.png"]
    reasons = {e.path.name: e.reason for e in result.errors}
    assert reasons["empty.png"] == "file is empty (0 bytes)"
    assert "PNG or JPEG" in reasons["text.png"]
    assert "DICOM" in reasons["doc.dcm"]
    for name, reason in [("cut.png", "corrupt or truncated"), ("tiny.png", "too small"), ("flat.png", "blank")]:
        with pytest.raises(StudyError, match=reason):
            read_study(tmp_path / name)
