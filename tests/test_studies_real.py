"""Reading the real DICOMs and NIH PNGs in ../shared/data."""

import cv2
import numpy as np
import pytest

from cxr_desktop.studies.reader import read_header, read_study
from cxr_desktop.studies.scan import scan
from cxr_desktop.studies.study import StudyError


def lungs_darker_than_mediastinum(image: np.ndarray) -> float:
    """Positive for a chest PA in display polarity (dark lungs, bright mediastinum), negative for a negative."""
    g = cv2.resize(image.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    lungs = np.concatenate([g[16:40, 12:26].ravel(), g[16:40, 38:52].ravel()])
    return float(np.median(g[16:48, 29:35]) - np.median(lungs)) / float(g.std() + 1e-6)


def test_siim_monochrome1_is_inverted_relative_to_its_monochrome2_twin(dicom_dir):
    """Both files store identical JPEG pixels; only the header's photometric interpretation differs.

    The DICOM standard says MONOCHROME1 is shown inverted, so the two must display as exact negatives.
    """
    mono2 = read_study(dicom_dir / "siim_cr_chest_pa_jpeg_baseline.dcm").image
    mono1 = read_study(dicom_dir / "siim_cr_chest_monochrome1.dcm").image
    assert mono1.shape == mono2.shape == (1024, 1024)
    assert np.abs((1.0 - mono1) - mono2).max() < 1e-6
    assert lungs_darker_than_mediastinum(mono2) > 0.5


def test_no_meta_10bit_monochrome1_loads_right_side_up(dicom_dir):
    study = read_study(dicom_dir / "cr_mono1_10bit_chest_no_meta.dcm")
    assert study.image.shape == (440, 440)
    assert 0.0 <= study.image.min() and study.image.max() <= 1.0
    assert lungs_darker_than_mediastinum(study.image) > 0.5  # inverted to display polarity
    assert study.info.view_position == "PA"


def test_uncompressed_nih_dicom(dicom_dir):
    study = read_study(dicom_dir / "nih_dx_chest_uncompressed.dcm")
    assert study.image.shape == (1024, 1024)
    assert study.info.modality == "DX"
    assert study.info.study_key.startswith("sop:")
    assert lungs_darker_than_mediastinum(study.image) > 0.5


def test_ct_is_refused_with_reason(dicom_dir):
    for reader in (read_header, read_study):
        with pytest.raises(StudyError, match="not a chest radiograph: modality CT"):
            reader(dicom_dir / "not_chest_ct_abdomen.dcm")


def test_scan_of_the_dicom_folder_reports_the_ct(dicom_dir):
    result = scan([dicom_dir])
    names = sorted(s.path.name for s in result.studies)
    assert len(names) == 4 and "not_chest_ct_abdomen.dcm" not in names
    assert [e.path.name for e in result.errors] == ["not_chest_ct_abdomen.dcm"]


def test_nih_pngs_load_at_1024_and_384(nih_sample):
    """The full-size originals (RGBA ones are covered synthetically in test_studies_synthetic)."""
    big = sorted((nih_sample / "images-1024").glob("*.png"))
    assert len(big) == 24
    for path in big:
        study = read_study(path)
        assert study.image.ndim == 2 and study.image.shape == (1024, 1024)
        assert study.image.dtype == np.uint8
    small = read_study(nih_sample / "images" / big[0].name)
    assert small.image.shape == (384, 384)
