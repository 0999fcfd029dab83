import numpy as np
import pytest
from trainer_helpers import make_folder_dataset

from cxr_desktop.core.preprocess import PreprocessSpec
from cxr_desktop.studies.synthetic import synthetic_chest
from trainer.augment import REGISTRY, compose, parse
from trainer.data.cache import ImageCache, build_cache
from trainer.data.local import folder_splits
from trainer.data.nih import nih_splits
from trainer.data.samples import patient_split


def sample_splits(shared_data):
    return nih_splits(
        shared_data / "nih14-sample" / "images",
        shared_data / "Data_Entry_2017_v2020.csv.gz",
        shared_data / "train_val_list.txt",
        shared_data / "test_list.txt",
        val_fraction=0.15,
        seed=0,
    )


def test_nih_splits_are_patient_wise_on_the_real_sample(shared_data):
    splits = sample_splits(shared_data)
    train, val, test = (set(t.patients) for _, t in splits.items())
    assert not train & val and not train & test and not val & test
    assert len(splits.train) + len(splits.val) + len(splits.test) == 952
    assert splits.notes["missing_images"] == 112_120 - 952
    assert splits.train.labels.shape[1] == 14 and not np.isnan(splits.train.labels).any()
    again = sample_splits(shared_data)
    assert again.val.paths == splits.val.paths


def test_patient_split_keeps_patients_together():
    patients = [f"p{i // 3}" for i in range(60)]
    keep, held = patient_split(patients, 0.2, seed=1)
    assert not {patients[i] for i in keep} & {patients[i] for i in held}
    assert len(held) == 12


def test_folder_dataset_with_seeded_val_and_class_caps(tmp_path):
    root = make_folder_dataset(tmp_path / "data", per_class=10)
    splits = folder_splits(root, "Cardiomegaly", "cardiomegaly", 0.2, 0, {"cardiomegaly": 4, "other": 8})
    assert len(splits.val) == 10  # the val folder exists, so it is used
    column = splits.train.labels[:, 1]
    assert int(column.sum()) == 4 and int((column == 0).sum()) == 8
    assert np.isnan(splits.train.labels[:, 0]).all()  # other findings are not labelled
    import shutil

    shutil.rmtree(root / "val")
    seeded = folder_splits(root, "Cardiomegaly", "cardiomegaly", 0.25, 0)
    assert len(seeded.val) == 5 and len(seeded.train) == 15


def test_augmentations_keep_shape_and_type():
    img = synthetic_chest(64)
    rng = np.random.default_rng(0)
    for name, entry in REGISTRY.items():
        assert entry.doc, name
        out = parse(name)(img, rng)
        assert out.shape == img.shape and out.dtype == np.uint8, name
    assert np.array_equal(parse("rotate:0")(img, rng), img)
    assert np.array_equal(compose(["none"])(img, rng), img)
    with pytest.raises(KeyError, match="available"):
        parse("vflip")


def test_cache_lists_bad_files_and_resumes(tmp_path):
    root = make_folder_dataset(tmp_path / "data", per_class=4)
    (root / "train" / "other" / "broken.png").write_bytes(b"not a png")
    spec = PreprocessSpec(input_size=32)
    index = build_cache(root, tmp_path / "cache", spec, workers=1)
    assert list(index["errors"]) == ["train/other/broken.png"]
    cache = ImageCache.open(tmp_path / "cache")
    assert cache.array.shape[1:] == (32, 32)
    first = root / "train" / "other" / "0.png"
    assert cache.lookup(first) is not None and cache.lookup(root / "train/other/broken.png") is None
    again = build_cache(root, tmp_path / "cache", spec, workers=1)  # everything already done
    assert again["names"] == index["names"]
    with pytest.raises(ValueError, match="another spec"):
        build_cache(root, tmp_path / "cache", PreprocessSpec(input_size=48), workers=1)
