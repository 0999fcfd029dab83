"""Training data-path benchmark: images/s for (a) the uint8 cache, (b) decoding PNGs on every step,
(c) the model step alone on in-memory tensors, measured in one run; prints the ratios (target a/c >= 0.9).

    .venv/bin/python benchmarks/train_throughput.py --images ../shared/data/nih14-sample/images \
        --cache cache/nih14-sample-224 --arch efficientnet_lite0 --size 224 --batches 6
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from cxr_desktop.core.architectures import create
from cxr_desktop.core.preprocess import PreprocessSpec, normalize_input
from trainer.augment import compose
from trainer.data.cache import ImageCache
from trainer.data.dataset import XrayDataset
from trainer.data.samples import SampleTable
from trainer.fit import masked_bce


def step_rate(model, optimizer, batches, spec: PreprocessSpec) -> float:
    seen, started = 0, None
    for i, (images, labels) in enumerate(batches):
        if i == 1:  # the first step warms up kernels and workers
            started, seen = time.perf_counter(), 0
        x = normalize_input(images, spec).contiguous(memory_format=torch.channels_last)
        loss = masked_bce(model(x), labels, None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(images)
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="made by `cxr-train cache` at --size")
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    spec = PreprocessSpec(input_size=args.size)
    paths = sorted(args.images.rglob("*.png"))[: args.batch_size * (args.batches + 1)]
    table = SampleTable(paths, np.zeros((len(paths), 14), np.float32), [str(p) for p in paths])
    augment = compose(["rotate:5"])
    model = create(args.arch, 14).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def loader(cache):
        data = XrayDataset(table, spec, augment, cache)
        return DataLoader(data, args.batch_size, num_workers=args.workers, persistent_workers=False)

    cached = step_rate(model, optimizer, loader(ImageCache.open(args.cache)), spec)
    decoded = step_rate(model, optimizer, loader(None), spec)
    in_memory = [(imgs, labels) for imgs, labels in loader(ImageCache.open(args.cache))]
    model_only = step_rate(model, optimizer, in_memory, spec)
    threads = torch.get_num_threads()
    print(f"machine: {threads} torch threads, {args.arch} at {args.size} px, batch {args.batch_size}")
    print(f"(a) from the uint8 cache     : {cached:8.1f} images/s")
    print(f"(b) decoding PNGs every step : {decoded:8.1f} images/s")
    print(f"(c) model step alone         : {model_only:8.1f} images/s")
    print(
        f"a/c = {cached / model_only:.2f} (target >= 0.90), b/c = {decoded / model_only:.2f}, "
        f"a/b = {cached / decoded:.2f}"
    )


if __name__ == "__main__":
    main()
