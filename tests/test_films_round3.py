"""Hardening round 3 (issue 22, items 14 and 15), beyond the catalogue rows: what the decoded films and the
header texts are, in detail."""

import csv

import numpy as np
import pytest
from conftest import make_tiny_bundle
from hostile_inputs_round3 import (
    CHEST,
    MARKER,
    chest_12bit,
    hot_pixel_png,
    huge_patient_dicom,
    inverse_lut_dicom,
    marker_dicom,
    pydicom_file,
    view_dicom,
)
from pydicom.data import get_testdata_file

from cxr_desktop.cli import main as triage_main
from cxr_desktop.core.guard import LATERAL
from cxr_desktop.inference.engine import Engine
from cxr_desktop.studies.reader import read_study
from cxr_desktop.studies.study import MAX_TEXT, header_text, is_lateral, robust_range
from cxr_desktop.studies.synthetic import build_dataset, write_dicom


def _image(path):
    return read_study(path).image.astype(np.float64)


def test_presentation_lut_inverse_is_honoured_once(tmp_path):
    upright = _image(write_dicom(tmp_path / "upright.dcm", CHEST))
    inverse_lut_dicom(tmp_path / "inverse.dcm")
    assert np.abs(_image(tmp_path / "inverse.dcm") - upright).max() < 1e-6
    # DX MONOCHROME1 files carry INVERSE too: the film is inverted once, not twice
    mono1 = write_dicom(tmp_path / "m1.dcm", 255 - CHEST, photometric="MONOCHROME1")
    both = build_dataset(255 - CHEST, photometric="MONOCHROME1", extra={"PresentationLUTShape": "INVERSE"})
    both.save_as(tmp_path / "m1_inverse.dcm", enforce_file_format=True)
    assert np.abs(_image(tmp_path / "m1_inverse.dcm") - _image(mono1)).max() < 1e-6
    assert np.abs(_image(mono1) - upright).max() < 1e-6


@pytest.mark.parametrize(
    "view, lateral",
    [("LL", True), ("RL", True), ("LLAT", True), ("RLAT", True), ("LATERAL_LEFT", True), ("lateral-right", True)]
    + [("LEFT LATERAL", True), ("X-TABLE LAT", True), ("PA", False), ("AP", False), ("", False), ("LLD", False)]
    + [("RLD", False), ("LATERAL DECUBITUS", False), ("LL OBLIQUE", False), ("PLATE", False)],
)
def test_lateral_spellings(view, lateral):
    assert is_lateral(view) is lateral


def test_a_llat_film_is_scored_but_never_urgent(tmp_path):
    engine = Engine.from_path(make_tiny_bundle(tmp_path / "always", cardiomegaly_threshold=1e-6), device="cpu")
    paths = []
    for view in ("LLAT", "RLAT", "LATERAL_LEFT", "PA"):
        view_dicom(view)(tmp_path / f"{view}.dcm")
        paths.append(tmp_path / f"{view}.dcm")
    results = list(engine.triage(paths))
    assert [r.quality for r in results[:3]] == [LATERAL] * 3 and not any(r.urgent for r in results[:3])
    assert results[3].urgent


@pytest.mark.parametrize("build", [marker_dicom, hot_pixel_png], ids=["dicom-4095", "png-65535"])
def test_a_burnt_in_marker_at_full_scale_does_not_flatten_the_film(tmp_path, build):
    """The film around the marker looks as the film without it (the old min-max stretch made it ~25 % as
    contrasty: every film then scored alike)."""
    clean = write_dicom(tmp_path / "clean.dcm", chest_12bit(), bits_stored=12)
    path = tmp_path / ("marked" + (".png" if build is hot_pixel_png else ".dcm"))
    build(path)
    marked, reference = _image(path), _image(clean)
    outside = np.ones(marked.shape, bool)
    outside[MARKER] = False
    outside &= marked < 1.0  # the hot pixels
    assert np.abs(marked[outside] - reference[outside]).mean() < 0.01
    assert marked[outside].std() > 0.9 * reference[outside].std()


def test_the_robust_range_ignores_full_scale_but_not_the_film():
    film = chest_12bit().astype(np.float32)
    low, high = robust_range(film)
    assert film.min() <= low < high <= film.max() and high - low > 0.9 * (film.max() - film.min())
    two_level = np.zeros((64, 64), np.float32)
    two_level[:, 32:] = 1.0
    assert robust_range(two_level) == (0.0, 1.0)


def test_ybr_full_422_is_decoded_to_its_colours_once(tmp_path):
    pydicom_file("SC_ybr_full_422_uncompressed.dcm")(tmp_path / "ybr.dcm")
    image = read_study(tmp_path / "ybr.dcm").image
    assert image.shape == (100, 100)
    # the pattern's top band is pure red (254, 0, 0): luminance 0.299 (converting twice would give another)
    assert image[0, 0] == pytest.approx(0.299 * 254 / 255, abs=0.02)


def test_dicomdir_is_named(tmp_path):
    from cxr_desktop.studies.study import StudyError

    with pytest.raises(StudyError, match="a DICOMDIR"):
        read_study(get_testdata_file("DICOMDIR"))


# -- item 15: header texts ------------------------------------------------------------------------------


def test_a_huge_patient_id_is_decoded_and_capped(tmp_path, tiny_bundle):
    huge_patient_dicom(tmp_path / "huge.dcm")
    info = read_study(tmp_path / "huge.dcm").info
    for value, letter, length in ((info.patient_id, "P", 1_000_000), (info.patient_name, "N", 100_000)):
        assert not value.startswith("b'") and value.startswith(letter * 40) and "…" in value
        assert len(value) <= MAX_TEXT + 40 and f"{length:,} characters" in value
    out = tmp_path / "t.csv"
    assert triage_main([str(tmp_path / "huge.dcm"), "--model", str(tiny_bundle), "--out", str(out), "--quiet"]) == 0
    [row] = csv.DictReader(out.open())  # the default field limit (128 KB) is not reached
    assert row["status"] == "ok" and row["patient_id"] == info.patient_id


def test_header_text_keeps_two_long_values_apart_and_short_ones_as_they_are():
    assert header_text(b"PAT 1\x00 ") == "PAT 1" and header_text(None) == "" and header_text("A^B") == "A^B"
    first, second = header_text("X" * 200 + "1"), header_text("X" * 200 + "2")
    assert first != second and first.startswith("X" * 40)
