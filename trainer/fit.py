"""The training loop: AdamW, cosine or plateau schedule, masked BCE, early stop on validation mean AUROC,
a checkpoint every epoch and exact resume; DistributedDataParallel under ``torchrun``."""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from cxr_desktop.core import architectures
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.core.preprocess import normalize_input
from trainer.augment import compose
from trainer.config import TrainConfig
from trainer.data.cache import ImageCache
from trainer.data.dataset import XrayDataset, oversample_indices
from trainer.data.samples import Splits
from trainer.metrics import auroc

log = logging.getLogger(__name__)
BEST = "best.safetensors"
CHECKPOINT = "checkpoint.pt"


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local)
        return torch.device("cpu")
    return torch.device(requested)


def use_bf16(config: TrainConfig, device: torch.device) -> bool:
    if config.precision == "fp32":
        return False
    if config.precision == "bf16":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None) -> torch.Tensor:
    known = ~torch.isnan(labels)
    targets = torch.nan_to_num(labels, nan=0.0)
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits.float(), targets, reduction="none", pos_weight=pos_weight
    )
    return (loss * known).sum() / known.sum().clamp(min=1)


def build_model(config: TrainConfig) -> nn.Module:
    if config.init.startswith("checkpoint:"):
        source = Path(config.init.split(":", 1)[1])
        weights = source / BEST if source.is_dir() else source
        model = architectures.create(config.architecture, len(FINDINGS), init="scratch")
        model.load_state_dict(load_file(str(weights)))
        log.info("initialised from %s", weights)
        return model
    return architectures.create(config.architecture, len(FINDINGS), init=config.init)


def predict(model: nn.Module, loader: DataLoader, device: torch.device, spec, bf16: bool) -> np.ndarray:
    model.eval()
    outputs = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for images, _ in loader:
            batch = normalize_input(images.to(device, non_blocking=True), spec)
            outputs.append(torch.sigmoid(model(batch.contiguous(memory_format=torch.channels_last)).float()).cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, len(FINDINGS)), np.float32)


def mean_auroc(labels: np.ndarray, probs: np.ndarray) -> tuple[float, dict[str, float]]:
    per = {name: auroc(labels[:, i], probs[:, i]) for i, name in enumerate(FINDINGS)}
    scored = [v for v in per.values() if not np.isnan(v)]
    return (float(np.mean(scored)) if scored else float("nan")), per


def make_loaders(config: TrainConfig, splits: Splits, rank: Dist) -> tuple[XrayDataset, DataLoader, DataLoader]:
    spec = config.spec()
    cache = ImageCache.open(Path(config.cache)) if config.cache else None
    order = None
    finding = config.binary or "Cardiomegaly"
    if config.balance == "oversample":
        order = oversample_indices(splits.train, finding, config.oversample_to, config.seed)
    train_set = XrayDataset(splits.train, spec, compose(config.augment), cache, config.seed, order)
    val_set = XrayDataset(splits.val, spec, None, cache)
    sampler = DistributedSampler(train_set, rank.world, rank.rank, seed=config.seed) if rank.world > 1 else None
    common = {
        "num_workers": config.workers,
        "persistent_workers": config.workers > 0,
        "pin_memory": torch.cuda.is_available(),
    }
    generator = torch.Generator().manual_seed(config.seed)
    train = DataLoader(
        train_set,
        config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=len(train_set) > config.batch_size,
        generator=generator,
        **common,
    )
    val = DataLoader(val_set, config.batch_size * 2, shuffle=False, **common)
    return train_set, train, val


def positive_weights(config: TrainConfig, splits: Splits, device: torch.device) -> torch.Tensor | None:
    if not (config.pos_weight or config.balance == "weighted"):
        return None
    labels = splits.train.labels
    pos = np.nansum(labels, axis=0)
    neg = np.sum(~np.isnan(labels), axis=0) - pos
    return torch.tensor(np.where(pos > 0, neg / np.maximum(pos, 1), 1.0), dtype=torch.float32, device=device)


def fit(config: TrainConfig, splits: Splits, run_dir: Path) -> dict:
    """Train (or resume) in ``run_dir``; returns the history with the best validation mean AUROC."""
    device = pick_device(config.device)
    rank = setup_distributed(device)
    bf16 = use_bf16(config, device)
    seed_everything(config.seed)
    model = build_model(config).to(device).to(memory_format=torch.channels_last)
    train_set, train_loader, val_loader = make_loaders(config, splits, rank)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs))
    elif config.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.3, patience=1)
    else:
        raise ValueError(f"unknown schedule {config.schedule!r}")
    state = {"epoch": 0, "best": -1.0, "best_epoch": -1, "history": []}
    checkpoint = run_dir / CHECKPOINT
    if checkpoint.exists():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        state = json.loads(saved["state"])
        log.info("resuming %s after epoch %d", run_dir.name, state["epoch"])
    net = nn.parallel.DistributedDataParallel(model) if rank.world > 1 else model
    pos_weight = positive_weights(config, splits, device)
    spec = config.spec()
    for epoch in range(state["epoch"], config.epochs):
        if epoch - state["best_epoch"] > config.early_stop_patience and state["best_epoch"] >= 0:
            log.info("early stop: no validation gain for %d epochs", config.early_stop_patience)
            break
        train_set.set_epoch(epoch)
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        train_loader.generator.manual_seed(config.seed * 1000 + epoch)
        net.train()
        started, total, seen = time.time(), 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not rank.main, leave=False)
        for images, labels in bar:
            batch = normalize_input(images.to(device, non_blocking=True), spec)
            batch = batch.contiguous(memory_format=torch.channels_last)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = net(batch)
            loss = masked_bce(logits, labels, pos_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(images)
            seen += len(images)
            bar.set_postfix(loss=f"{total / max(seen, 1):.4f}")
        train_seconds = time.time() - started
        probs = predict(model, val_loader, device, spec, bf16)
        val_auc, per = mean_auroc(splits.val.labels, probs)
        if config.schedule == "plateau":
            scheduler.step(val_auc if not np.isnan(val_auc) else 0.0)
        else:
            scheduler.step()
        record = {
            "epoch": epoch + 1,
            "train_loss": total / max(seen, 1),
            "val_mean_auroc": val_auc,
            "val_auroc": per,
            "train_seconds": round(train_seconds, 2),
            "train_images_per_second": round(seen * rank.world / max(train_seconds, 1e-9), 2),
            "lr": optimizer.param_groups[0]["lr"],
        }
        state["history"].append(record)
        if not np.isnan(val_auc) and val_auc > state["best"]:
            state["best"], state["best_epoch"] = val_auc, epoch
            if rank.main:
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(run_dir / BEST)
                )
        state["epoch"] = epoch + 1
        if rank.main:
            log.info(
                "epoch %d: loss %.4f, val mean AUROC %.4f, %.0f s",
                epoch + 1,
                record["train_loss"],
                val_auc,
                train_seconds,
            )
            tmp = checkpoint.with_suffix(".tmp")
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "state": json.dumps(state),
                },
                tmp,
            )
            os.replace(tmp, checkpoint)
            # derived from the checkpointed state, so a kill between the two writes cannot duplicate an epoch
            lines = "".join(json.dumps(r) + "\n" for r in state["history"])
            (run_dir / "metrics.jsonl.tmp").write_text(lines, encoding="utf-8")
            os.replace(run_dir / "metrics.jsonl.tmp", run_dir / "metrics.jsonl")
        if rank.world > 1:
            dist.barrier()
    if not (run_dir / BEST).exists() and rank.main:  # validation never had both classes: keep the last weights
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(run_dir / BEST))
    if rank.main:
        (run_dir / "done.json").write_text(
            json.dumps({"best_val_mean_auroc": state["best"], "best_epoch": state["best_epoch"] + 1})
        )
    return state
