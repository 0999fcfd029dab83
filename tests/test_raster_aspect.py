"""A PNG or JPEG whose file says its pixels are not square (PNG pHYs, JPEG JFIF density) is read at its true
proportions, as a DICOM's Pixel Aspect Ratio is (issue 21, item 7: aspect ratio is honoured)."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from cxr_desktop.studies.reader import read_header, read_pixels, read_study
from cxr_desktop.studies.study import StudyError
from cxr_desktop.studies.synthetic import synthetic_chest

CHEST = synthetic_chest(256, seed=5)
TALL_ROWS = cv2.resize(CHEST, (256, 128), interpolation=cv2.INTER_AREA)  # every stored row stands for two


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def _with_unitless_phys(path, x: int, y: int) -> None:
    """``path`` (a PNG) rewritten with a pHYs chunk of unit 0 (only the ratio stated) right after IHDR."""
    data = path.read_bytes()
    body = b"pHYs" + struct.pack(">IIB", x, y, 0)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body))
    at = 8 + 8 + 13 + 4  # signature, IHDR's length and type, its 13 bytes, its CRC
    path.write_bytes(data[:at] + chunk + data[at:])


@pytest.mark.parametrize(
    ("name", "save"),
    [
        ("metres.png", {"dpi": (144, 72)}),  # pHYs in pixels per metre: twice as many across as down
        ("unitless.png", {}),
        ("jfif.jpg", {"dpi": (144, 72), "quality": 95}),
    ],
)
def test_pixels_stated_twice_as_tall_as_wide_are_stretched_back(tmp_path, name, save):
    path = tmp_path / name
    Image.fromarray(TALL_ROWS).save(path, **save)
    if name == "unitless.png":
        _with_unitless_phys(path, 2, 1)
    study = read_study(path)
    assert study.image.shape == (256, 256)
    assert _correlation(study.image, CHEST) > 0.98
    assert np.array_equal(read_pixels(path, read_header(path)), study.image)  # the worklist's way reads the same


def test_square_or_unstated_density_leaves_the_image_as_stored(tmp_path):
    for name, save in (("plain.png", {}), ("square.png", {"dpi": (300, 300)}), ("zero.png", {})):
        Image.fromarray(TALL_ROWS).save(tmp_path / name, **save)
        if name == "zero.png":
            _with_unitless_phys(tmp_path / name, 0, 0)
        assert read_study(tmp_path / name).image.shape == TALL_ROWS.shape


def test_an_absurd_density_is_that_files_error(tmp_path):
    path = tmp_path / "absurd.png"
    Image.fromarray(TALL_ROWS).save(path)
    _with_unitless_phys(path, 100, 1)
    with pytest.raises(StudyError, match="pixel aspect ratio outside 1:4 to 4:1"):
        read_study(path)
