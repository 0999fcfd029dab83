"""Augmentation changes every epoch, in loader workers too, and is the same for the same (seed, epoch)."""

import numpy as np
import torch
from trainer_helpers import make_folder_dataset

from trainer.config import TrainConfig
from trainer.fit import Dist, make_loaders
from trainer.run import build_splits


def epoch_images(loader, epoch: int) -> tuple[list[tuple[int, int]], torch.Tensor]:
    loader.sampler.set_epoch(epoch)
    keys = list(loader.sampler)
    images = torch.cat([images for images, _ in loader])
    return keys, images


def test_workers_see_each_epochs_augmentation(tmp_path):
    root = make_folder_dataset(tmp_path / "data", per_class=8)
    config = TrainConfig(
        dataset="folder",
        images=str(root),
        binary="Cardiomegaly",
        preprocessing={
            "input_size": 32,
            "resize": "letterbox",
            "contrast": "none",
            "normalization": "imagenet",
            "channels": 3,
        },
        augment=["rotate:20", "translate:0.1"],
        batch_size=4,
        workers=2,
        seed=3,
    )
    train_set, loader, _ = make_loaders(config, build_splits(config), Dist())
    assert loader.num_workers == 2 and loader.persistent_workers
    by_epoch = {}
    for epoch in (0, 1, 2):
        keys, images = epoch_images(loader, epoch)
        kept = len(images)
        expected = torch.stack([train_set[key][0] for key in keys[:kept]])  # the same keys, in this process
        assert torch.equal(images, expected), f"epoch {epoch}: the workers augmented differently"
        by_epoch[epoch] = {position: images[i] for i, (_, position) in enumerate(keys[:kept])}
    common = set(by_epoch[0]) & set(by_epoch[1]) & set(by_epoch[2])
    assert common
    changed = [p for p in common if not torch.equal(by_epoch[0][p], by_epoch[1][p])]
    assert len(changed) == len(common), "an image got the same augmentation in two epochs"
    # the order is reshuffled every epoch too, and reproducibly
    loader.sampler.set_epoch(1)
    first = [position for _, position in loader.sampler]
    loader.sampler.set_epoch(1)
    assert first == [position for _, position in loader.sampler]
    loader.sampler.set_epoch(0)
    assert first != [position for _, position in loader.sampler]
    assert np.unique(first).size == len(train_set)
