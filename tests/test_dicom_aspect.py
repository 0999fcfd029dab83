"""A DICOM whose pixels are not square is read at its true proportions (issue 21, item 7c): Pixel Aspect
Ratio (0028,0034), Pixel Spacing and Imager Pixel Spacing are honoured."""

import cv2
import numpy as np
import pytest

from cxr_desktop.studies.reader import read_header, read_pixels, read_study
from cxr_desktop.studies.study import StudyError
from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom

CHEST = synthetic_chest(256, seed=11)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


@pytest.mark.parametrize(
    ("element", "value"),
    [("PixelAspectRatio", [2, 1]), ("PixelSpacing", [0.28, 0.14]), ("ImagerPixelSpacing", [0.3, 0.15])],
)
def test_pixels_twice_as_tall_as_wide_are_stretched_back(tmp_path, element, value):
    squeezed = cv2.resize(CHEST, (256, 128), interpolation=cv2.INTER_AREA)  # every stored row is two rows tall
    path = write_dicom(tmp_path / "tall.dcm", squeezed, extra={element: value})
    image = read_study(path).image
    assert image.shape == (256, 256)
    assert _correlation(image, CHEST / 255.0) > 0.98
    assert np.array_equal(read_pixels(path, read_header(path)), image)  # the worklist's way reads the same


def test_pixels_twice_as_wide_as_tall_are_stretched_back(tmp_path):
    squeezed = cv2.resize(CHEST, (128, 256), interpolation=cv2.INTER_AREA)
    image = read_study(write_dicom(tmp_path / "wide.dcm", squeezed, extra={"PixelAspectRatio": [1, 2]})).image
    assert image.shape == (256, 256) and _correlation(image, CHEST / 255.0) > 0.98


def test_square_pixels_and_a_missing_ratio_leave_the_image_as_stored(tmp_path):
    for name, extra in (("none", {}), ("square", {"PixelSpacing": [0.143, 0.143], "PixelAspectRatio": [1, 1]})):
        image = read_study(write_dicom(tmp_path / f"{name}.dcm", CHEST, extra=extra)).image
        assert np.array_equal(image, CHEST / np.float32(255.0))


def test_pixel_spacing_is_trusted_before_the_aspect_ratio(tmp_path):
    path = write_dicom(tmp_path / "both.dcm", CHEST, extra={"PixelSpacing": [0.1, 0.1], "PixelAspectRatio": [2, 1]})
    assert read_study(path).image.shape == (256, 256)


def test_an_absurd_ratio_is_refused_with_its_reason(tmp_path):
    path = write_dicom(tmp_path / "absurd.dcm", CHEST, extra={"PixelAspectRatio": [10, 1]})
    with pytest.raises(StudyError, match="pixel aspect ratio outside 1:4 to 4:1"):
        read_study(path)
