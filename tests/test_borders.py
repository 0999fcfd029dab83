"""Uniform edge bands (a scanned film's frame, collimation) are cropped by the one preprocessing function when
its spec says so (issue 21, item 7b); a spec that does not say so preprocesses, and is written, exactly as
before the field existed."""

import cv2
import numpy as np
import pytest

from cxr_desktop.core.borders import content_box
from cxr_desktop.core.cam import map_to_image
from cxr_desktop.core.card import read_card
from cxr_desktop.core.preprocess import PreprocessSpec, border_box, resize_to_input
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.studies.synthetic import synthetic_chest

CROP = PreprocessSpec(input_size=128, crop_borders=True)
PLAIN = PreprocessSpec(input_size=128)


def framed(gray: np.ndarray, fraction: float, level: float = 6.0, seed: int = 0) -> np.ndarray:
    """``gray`` inside a noisy dark frame ``fraction`` of its side wide, with scattered white noise pixels all
    over (as in the local training set), the frame's level drifting by 10 grey levels from outside in."""
    rng = np.random.default_rng(seed)
    h, w = gray.shape
    py, px = round(fraction * h), round(fraction * w)
    canvas = rng.normal(level, 2.0, (h + 2 * py, w + 2 * px))
    canvas[:py] += np.linspace(0, 10, py)[:, None]
    canvas[py : py + h, px : px + w] = gray
    out = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    ys, xs = rng.integers(0, out.shape[0], 300), rng.integers(0, out.shape[1], 300)
    out[ys, xs] = 255
    return out


def test_a_noisy_dark_frame_is_found_to_the_pixel_or_two():
    chest = synthetic_chest(256, seed=1)
    for fraction in (0.1, 0.2, 0.25):
        image = framed(chest, fraction)
        pad = round(fraction * 256)
        y0, x0, y1, x1 = content_box(image)
        assert abs(y0 - pad) <= 2 and abs(x0 - pad) <= 2
        assert abs(y1 - (pad + 256)) <= 2 and abs(x1 - (pad + 256)) <= 2


def test_the_cropped_input_is_the_unframed_films_input():
    chest = synthetic_chest(256, seed=2)
    image = framed(chest, 0.25)
    unframed = resize_to_input(chest, CROP).astype(float)
    assert np.abs(resize_to_input(image, CROP) - unframed).mean() < 6  # a few noise pixels and 1 px of frame
    assert np.abs(resize_to_input(image, PLAIN) - unframed).mean() > 30  # without the crop: a different input


def test_a_bright_collimation_band_with_a_sharp_edge_is_cropped():
    chest = (synthetic_chest(256, seed=3) * 0.7).astype(np.uint8)  # the film's top edge at about 140
    image = np.vstack([np.full((40, 256), 245, np.uint8), chest])
    image[:40] -= np.linspace(0, 12, 40).astype(np.uint8)[:, None]  # not perfectly uniform
    assert content_box(image)[0] in range(39, 43)


def test_a_bright_region_that_fades_in_is_anatomy_and_stays():
    """A saturated abdomen at the bottom of a film is near-uniform and bright, but it has no edge."""
    chest = synthetic_chest(256, seed=4).astype(float)
    ramp = np.linspace(0, 1, 80)[:, None]
    chest[-80:] = chest[-80:] * (1 - ramp) + 250 * ramp
    image = np.clip(chest, 0, 255).astype(np.uint8)
    assert content_box(image) == (0, 0, 256, 256)


def test_clean_films_thin_edges_and_blank_images_are_left_alone():
    chest = synthetic_chest(256, seed=5)
    assert content_box(chest) == (0, 0, 256, 256)
    thin = framed(chest, 0.03)
    assert content_box(thin) == (0, 0, *thin.shape)  # 3 % of the side: below MIN_BAND
    blank = np.zeros((200, 200), np.uint8)
    assert content_box(blank) == (0, 0, 200, 200)
    mostly_frame = framed(synthetic_chest(60, seed=6), 0.8)  # the film is 38 % of the side: below MIN_KEPT
    assert content_box(mostly_frame) == (0, 0, *mostly_frame.shape)  # not this step's


def test_a_large_image_is_searched_small_and_cropped_at_full_resolution():
    chest = cv2.resize(synthetic_chest(256, seed=7), (1500, 1500))
    image = framed(chest, 0.2)
    y0, x0, y1, x1 = content_box(image)
    assert abs(y0 - 300) <= 4 and abs(x0 - 300) <= 4 and abs(y1 - 1800) <= 4 and abs(x1 - 1800) <= 4


def test_a_spec_that_does_not_crop_is_written_as_before_the_field_existed():
    old_spelling = {"input_size": 224, "resize": "letterbox", "contrast": "none", "normalization": "imagenet",
                    "channels": 3}  # fmt: skip
    assert PreprocessSpec().to_dict() == old_spelling
    assert PreprocessSpec.from_dict(old_spelling).crop_borders is False
    cropping = PreprocessSpec(crop_borders=True)
    assert cropping.to_dict() == {**old_spelling, "crop_borders": True}
    assert PreprocessSpec.from_dict(cropping.to_dict()) == cropping
    with pytest.raises(ValueError, match="crop_borders"):
        PreprocessSpec(crop_borders="yes")


def test_the_shipped_model_does_not_crop():
    card = read_card(default_model_dir())
    assert "crop_borders" not in card.preprocessing and card.spec.crop_borders is False
    image = framed(synthetic_chest(256, seed=8), 0.2)
    assert border_box(image, card.spec) == (0, 0, *image.shape)


def test_a_heatmap_maps_back_inside_the_cropped_frame():
    image = framed(synthetic_chest(200, seed=9), 0.2)
    content = border_box(image, CROP)
    cam = np.ones((128, 128), np.float32)
    full = map_to_image(cam, image.shape, CROP, content)
    y0, x0, y1, x1 = content
    assert full[y0:y1, x0:x1].min() > 0.99 and full[:y0].max() == 0 and full[:, x1:].max() == 0


def test_real_nih_films_framed_by_their_scanner_are_cropped_and_most_are_not(nih_sample):
    images = nih_sample / "images"
    framed_film = cv2.imread(str(images / "00001403_002.png"), cv2.IMREAD_GRAYSCALE)  # a black band on top
    assert content_box(framed_film)[0] > 20 and content_box(framed_film)[1:] == (0, 384, 384)
    names = sorted(p.name for p in images.glob("*.png"))[:40]
    kept = [n for n in names if content_box(cv2.imread(str(images / n), cv2.IMREAD_GRAYSCALE)) == (0, 0, 384, 384)]
    assert len(kept) >= 36  # 3 of the first 40 have a frame of 5 % or more (measured), none cut into anatomy


def test_training_opts_in_by_its_config_and_a_cache_must_agree(tmp_path):
    from trainer_helpers import make_folder_dataset

    from trainer.config import ConfigError, load_config, validate
    from trainer.data.cache import ImageCache, build_cache
    from trainer.data.dataset import XrayDataset
    from trainer.data.samples import SampleTable

    with pytest.raises(ConfigError, match="crop_borders: expected true or false"):
        validate({"preprocessing": {"crop_borders": "sometimes"}})
    root = make_folder_dataset(tmp_path / "data", per_class=2)
    config = load_config(None, ["dataset=folder", f"images={root}", "preprocessing.crop_borders=true"])
    assert config.spec().crop_borders and config.spec().to_dict()["crop_borders"] is True
    plain = build_cache(root, tmp_path / "plain", PreprocessSpec(input_size=32), workers=1)
    assert "crop_borders" not in plain["spec"]  # a cache index as written before the field existed
    with pytest.raises(ValueError, match="another spec"):
        build_cache(root, tmp_path / "plain", PreprocessSpec(input_size=32, crop_borders=True), workers=1)
    cache = ImageCache.open(tmp_path / "plain")
    paths = sorted((root / "train").rglob("*.png"))
    table = SampleTable(paths, np.zeros((len(paths), 14), np.float32), [str(p) for p in paths])
    XrayDataset(table, PreprocessSpec(input_size=32), cache=cache)
    with pytest.raises(ValueError, match="does not match"):
        XrayDataset(table, PreprocessSpec(input_size=32, crop_borders=True), cache=cache)
