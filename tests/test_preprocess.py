import cv2
import numpy as np
import pytest
import torch

from cxr_desktop.core.preprocess import PreprocessError, PreprocessSpec, input_box, preprocess, to_uint8
from cxr_desktop.studies.reader import read_study
from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom


def test_output_shape_and_imagenet_normalisation():
    image = np.full((300, 200), 255, dtype=np.uint8)
    x = preprocess(image, PreprocessSpec(input_size=64))
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    # letterbox: the centre holds the image (white), the sides are black padding
    assert x[0, 32, 32].item() == pytest.approx((1 - 0.485) / 0.229, abs=1e-4)
    assert x[0, 32, 0].item() == pytest.approx((0 - 0.485) / 0.229, abs=1e-4)


def test_deterministic():
    image = synthetic_chest(200, seed=3)
    spec = PreprocessSpec(input_size=96, contrast="clahe")
    assert torch.equal(preprocess(image, spec), preprocess(image.copy(), spec))


def test_bit_depths_agree():
    base = synthetic_chest(128, seed=1)
    as16 = base.astype(np.uint16) * 257  # exact 8->16 bit expansion
    as_float = base.astype(np.float32) / 255.0
    spec = PreprocessSpec(input_size=64)
    ref = preprocess(base, spec)
    assert torch.allclose(preprocess(as16, spec), ref)
    assert torch.allclose(preprocess(as_float, spec), ref)


def test_bad_images_are_refused():
    with pytest.raises(PreprocessError, match="2-D"):
        to_uint8(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(PreprocessError, match="NaN"):
        to_uint8(np.full((4, 4), np.nan, dtype=np.float32))


def test_spec_round_trip_and_validation():
    spec = PreprocessSpec(input_size=128, resize="stretch", contrast="equalize", normalization="unit")
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        PreprocessSpec(resize="flip")
    with pytest.raises(ValueError, match="unknown preprocessing keys"):
        PreprocessSpec.from_dict({"input_size": 224, "hflip": True})


def test_input_box_letterbox_geometry():
    box = input_box((400, 200), PreprocessSpec(input_size=100))
    assert (box.top, box.left, box.height, box.width) == (0, 25, 100, 50)


def test_png_and_dicom_with_same_pixels_give_identical_input(tmp_path):
    pixels = synthetic_chest(256, seed=7)
    png = tmp_path / "study.png"
    cv2.imwrite(str(png), pixels)
    dcm = write_dicom(tmp_path / "study.dcm", pixels)
    spec = PreprocessSpec(input_size=224)
    from_png = preprocess(read_study(png).image, spec)
    from_dcm = preprocess(read_study(dcm).image, spec)
    assert torch.equal(from_png, from_dcm)
