"""Torch dataset over a :class:`SampleTable`: uint8 model-size images (from the cache or decoded on the fly)
with augmentation seeded by (seed, epoch, position), so a resumed run sees exactly the same batches.

The epoch travels with every index (:class:`EpochSampler` yields ``(epoch, position)``): loader workers keep
their own copy of the dataset, so an epoch stored on the dataset would never reach them."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from cxr_desktop.core.labels import finding_index
from cxr_desktop.core.preprocess import PreprocessSpec
from trainer.augment import Augment
from trainer.data.cache import ImageCache, decode_for_training
from trainer.data.samples import SampleTable

log = logging.getLogger(__name__)


def oversample_indices(table: SampleTable, finding: str, target: int, seed: int) -> np.ndarray:
    """All indices plus random repeats of the minority class up to ``target`` (0 = the majority count).

    The repeats are augmented differently from their originals because augmentation depends on position.
    """
    column = table.labels[:, finding_index(finding)]
    pos, neg = np.flatnonzero(column == 1), np.flatnonzero(column == 0)
    minority = pos if len(pos) <= len(neg) else neg
    target = target or max(len(pos), len(neg))
    extra = max(0, target - len(minority))
    rng = np.random.default_rng(seed)
    repeats = rng.choice(minority, size=extra, replace=True) if extra and len(minority) else np.zeros(0, np.int64)
    return np.concatenate([np.arange(len(table)), repeats]).astype(np.int64)


class XrayDataset(Dataset):
    def __init__(
        self,
        table: SampleTable,
        spec: PreprocessSpec,
        augment: Augment | None = None,
        cache: ImageCache | None = None,
        seed: int = 0,
        order: np.ndarray | None = None,
    ) -> None:
        self.table = table
        self.spec = spec
        self.augment = augment
        self.seed = seed
        self.order = np.arange(len(table)) if order is None else order
        self.cache_rows: np.ndarray | None = None
        self.cache = cache
        if cache is not None:
            geometry = ("input_size", "resize", "contrast", "crop_borders")
            if any(getattr(cache.spec, name) != getattr(spec, name) for name in geometry):
                raise ValueError(f"cache spec {cache.spec} does not match the run's preprocessing {spec}")
            rows = [cache.lookup(p) for p in table.paths]
            missing = sum(r is None for r in rows)
            if missing:
                raise ValueError(f"{missing} images of this split are not in the cache {cache.root}")
            self.cache_rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.order)

    def image(self, base: int) -> np.ndarray:
        if self.cache_rows is not None:
            return np.array(self.cache.array[self.cache_rows[base]])
        return decode_for_training(self.table.paths[base], self.spec)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``dataset[(epoch, position)]``; a bare position means epoch 0."""
        epoch, position = key if isinstance(key, tuple) else (0, key)
        base = int(self.order[position])
        img = self.image(base)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, epoch, position])
            img = self.augment(img, rng)
        return torch.from_numpy(np.ascontiguousarray(img)), torch.from_numpy(self.table.labels[base])


class EpochSampler(Sampler):
    """Yields ``(epoch, position)``: a seeded shuffle per epoch (or the positions of a wrapped sampler, e.g. a
    ``DistributedSampler``), with the epoch attached so that augmentation changes every epoch in any worker."""

    def __init__(self, size: int, seed: int, shuffle: bool = True, base: Sampler | None = None) -> None:
        self.size, self.seed, self.shuffle, self.base = size, seed, shuffle, base
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.base is not None and hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def positions(self) -> list[int]:
        if self.base is not None:
            return [int(i) for i in self.base]
        if not self.shuffle:
            return list(range(self.size))
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist()

    def __iter__(self):
        epoch = self.epoch
        return iter([(epoch, position) for position in self.positions()])

    def __len__(self) -> int:
        return len(self.base) if self.base is not None else self.size
