"""The training loop: AdamW, cosine or plateau schedule, masked BCE, early stop on validation mean AUROC,
a checkpoint every epoch and exact resume; DistributedDataParallel under ``torchrun``."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from cxr_desktop.core import architectures
from cxr_desktop.core.bundle import model_from_weights
from cxr_desktop.core.device import resolve_device
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.core.preprocess import normalize_input
from trainer.augment import compose
from trainer.config import TrainConfig
from trainer.data.cache import ImageCache
from trainer.data.dataset import EpochSampler, XrayDataset, oversample_indices
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


def training_device(requested: str) -> torch.device:
    """This process's device; "auto" and "cuda" take the GPU of its ``LOCAL_RANK`` (set by ``torchrun``)."""
    return resolve_device(requested, cuda_index=int(os.environ.get("LOCAL_RANK", "0")))


def use_bf16(config: TrainConfig, device: torch.device) -> bool:
    if config.precision == "fp32":
        return False
    if config.precision == "bf16":
        return True
    # "auto": bf16 on a CUDA GPU that has it; fp32 on the CPU, where bf16 autocast measured 4-10x slower for
    # Lite0 training and shifted scoring probabilities (docs/performance.md); ask for bf16 explicitly to use it
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


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
        model = model_from_weights(config.architecture, weights, len(FINDINGS))
        log.info("initialised from %s", weights)
        return model
    return architectures.create(config.architecture, len(FINDINGS), init=config.init)


def predict(
    model: nn.Module, loader: DataLoader, device: torch.device, spec, bf16: bool, progress: bool = True
) -> np.ndarray:
    model.eval()
    outputs = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for images, _ in tqdm(loader, desc="scoring", unit="batch", leave=False, disable=not progress):
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
    shard = DistributedSampler(train_set, rank.world, rank.rank, seed=config.seed) if rank.world > 1 else None
    common = {
        "num_workers": config.workers,
        "persistent_workers": config.workers > 0,
        "pin_memory": torch.cuda.is_available(),
    }
    train = DataLoader(
        train_set,
        config.batch_size,
        sampler=EpochSampler(len(train_set), config.seed, base=shard),
        drop_last=len(train_set) > config.batch_size,
        # the workers' base seed comes from here, not from the global RNG that the checkpoint restores
        generator=torch.Generator().manual_seed(config.seed),
        **common,
    )
    val = DataLoader(
        val_set, config.batch_size * 2, shuffle=False, generator=torch.Generator().manual_seed(config.seed), **common
    )
    return train_set, train, val


def positive_weights(config: TrainConfig, splits: Splits, device: torch.device) -> torch.Tensor | None:
    if not (config.pos_weight or config.balance == "weighted"):
        return None
    labels = splits.train.labels
    pos = np.nansum(labels, axis=0)
    neg = np.sum(~np.isnan(labels), axis=0) - pos
    return torch.tensor(np.where(pos > 0, neg / np.maximum(pos, 1), 1.0), dtype=torch.float32, device=device)


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """Stepped once per batch for ``cosine`` (per-epoch cosine steps, times a linear warm-up over the first
    ``warmup_epochs``); once per epoch, on validation AUROC, for ``plateau``."""
    if config.schedule == "plateau":
        if config.warmup_epochs:
            raise ValueError("warmup_epochs works with schedule=cosine only")
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.3, patience=1)
    if config.schedule != "cosine":
        raise ValueError(f"unknown schedule {config.schedule!r}; use cosine or plateau")
    warm_steps = round(config.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * (step // steps_per_epoch) / max(1, config.epochs)))
        return cosine * (min(1.0, (step + 1) / warm_steps) if warm_steps > 0 else 1.0)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_ema(config: TrainConfig, model: nn.Module) -> AveragedModel | None:
    if not config.ema_decay:
        return None
    if not 0.0 < config.ema_decay < 1.0:
        raise ValueError(f"ema_decay must be 0 (off) or between 0 and 1, got {config.ema_decay}")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)


@dataclass
class Training:
    """What one run carries from batch to batch and epoch to epoch (and what the checkpoint holds)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    ema: AveragedModel | None
    state: dict

    @property
    def evaluated(self) -> nn.Module:
        """The weights that are validated and kept: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else {},
                "torch_rng": torch.get_rng_state(),
                "state": json.dumps(self.state),
            },
            tmp,
        )
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if "T_max" in saved["scheduler"]:
            raise ValueError(f"{path} was written by an older trainer (per-epoch scheduler); start a new run")
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(saved["ema"])
        torch.set_rng_state(saved["torch_rng"])
        self.state = json.loads(saved["state"])


def train_epoch(
    run: Training, net: nn.Module, loader: DataLoader, config: TrainConfig, pos_weight, bf16: bool, show: bool
) -> tuple[float, int]:
    """One pass over the training loader; returns (mean loss, images seen)."""
    device, spec = next(run.model.parameters()).device, config.spec()
    net.train()
    total, seen = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {run.state['epoch'] + 1}/{config.epochs}", disable=not show, leave=False)
    for images, labels in bar:
        batch = normalize_input(images.to(device, non_blocking=True), spec)
        batch = batch.contiguous(memory_format=torch.channels_last)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(batch)
        loss = masked_bce(logits, labels, pos_weight)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        if config.schedule != "plateau":
            run.scheduler.step()
        total += float(loss.detach()) * len(images)
        seen += len(images)
        bar.set_postfix(loss=f"{total / max(seen, 1):.4f}")
    return total / max(seen, 1), seen


def save_weights(model: nn.Module, path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))


def write_history(run_dir: Path, history: list[dict]) -> None:
    # derived from the checkpointed state, so a kill between the two writes cannot duplicate an epoch
    lines = "".join(json.dumps(r) + "\n" for r in history)
    (run_dir / "metrics.jsonl.tmp").write_text(lines, encoding="utf-8")
    os.replace(run_dir / "metrics.jsonl.tmp", run_dir / "metrics.jsonl")


@dataclass
class TrainingSetup:
    """What :func:`fit` sets up once and every epoch uses: this process's device and rank, the loaders, the
    loss weights and the training state (resumed from the run's checkpoint when there is one)."""

    config: TrainConfig
    splits: Splits
    run_dir: Path
    device: torch.device
    rank: Dist
    bf16: bool
    training: Training
    net: nn.Module  # the model, wrapped for DistributedDataParallel when there are several processes
    train_loader: DataLoader
    val_loader: DataLoader
    pos_weight: torch.Tensor | None


def set_up_training(config: TrainConfig, splits: Splits, run_dir: Path) -> TrainingSetup:
    """Seed, build the model, loaders, optimiser, schedule and moving average, then resume the checkpoint
    (in this order: the seeded random state they consume is part of an exact resume)."""
    device = training_device(config.device)
    rank = setup_distributed(device)
    bf16 = use_bf16(config, device)
    seed_everything(config.seed)
    model = build_model(config).to(device).to(memory_format=torch.channels_last)
    _, train_loader, val_loader = make_loaders(config, splits, rank)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = make_scheduler(config, optimizer, max(1, len(train_loader)))
    fresh = {"epoch": 0, "best": -1.0, "best_epoch": -1, "history": []}
    training = Training(model, optimizer, scheduler, make_ema(config, model), fresh)
    checkpoint = run_dir / CHECKPOINT
    if checkpoint.exists():
        training.load(checkpoint)
        log.info("resuming %s after epoch %d", run_dir.name, training.state["epoch"])
    net = nn.parallel.DistributedDataParallel(model) if rank.world > 1 else model
    pos_weight = positive_weights(config, splits, device)
    return TrainingSetup(
        config, splits, run_dir, device, rank, bf16, training, net, train_loader, val_loader, pos_weight
    )


def stops_early(state: dict, epoch: int, patience: int) -> bool:
    """No validation gain for more than ``patience`` epochs since the best one."""
    return state["best_epoch"] >= 0 and epoch - state["best_epoch"] > patience


def run_epoch(setup: TrainingSetup, epoch: int) -> dict:
    """Train one epoch, validate, step a plateau schedule; returns the epoch's record for ``metrics.jsonl``."""
    config, training = setup.config, setup.training
    setup.train_loader.sampler.set_epoch(epoch)
    started = time.time()
    loss, seen = train_epoch(
        training, setup.net, setup.train_loader, config, setup.pos_weight, setup.bf16, setup.rank.main
    )
    train_seconds = time.time() - started
    val_probs = predict(training.evaluated, setup.val_loader, setup.device, config.spec(), setup.bf16)
    val_auc, per = mean_auroc(setup.splits.val.labels, val_probs)
    if config.schedule == "plateau":
        training.scheduler.step(val_auc if not np.isnan(val_auc) else 0.0)
    return {
        "epoch": epoch + 1,
        "train_loss": loss,
        "val_mean_auroc": val_auc,
        "val_auroc": per,
        "train_seconds": round(train_seconds, 2),
        "train_images_per_second": round(seen * setup.rank.world / max(train_seconds, 1e-9), 2),
        "lr": training.optimizer.param_groups[0]["lr"],
    }


def keep_epoch(setup: TrainingSetup, record: dict) -> None:
    """Add ``record`` to the history, keep the weights when validation improved, and (rank 0) write the
    checkpoint and ``metrics.jsonl``; the other ranks wait for it."""
    state, rank = setup.training.state, setup.rank
    epoch, val_auc = record["epoch"] - 1, record["val_mean_auroc"]
    state["history"].append(record)
    if not np.isnan(val_auc) and val_auc > state["best"]:
        state["best"], state["best_epoch"] = val_auc, epoch
        if rank.main:
            save_weights(setup.training.evaluated, setup.run_dir / BEST)
    state["epoch"] = epoch + 1
    if rank.main:
        seconds = record["train_seconds"]
        log.info("epoch %d: loss %.4f, val mean AUROC %.4f, %.0f s", epoch + 1, record["train_loss"], val_auc, seconds)
        setup.training.save(setup.run_dir / CHECKPOINT)
        write_history(setup.run_dir, state["history"])
    if rank.world > 1:
        dist.barrier()


def finish_training(setup: TrainingSetup) -> None:
    """Rank 0: keep the last weights when no epoch validated (one class only), and write ``done.json``."""
    if not setup.rank.main:
        return
    state = setup.training.state
    if not (setup.run_dir / BEST).exists():  # validation never had both classes: keep the last weights
        save_weights(setup.training.evaluated, setup.run_dir / BEST)
    (setup.run_dir / "done.json").write_text(
        json.dumps({"best_val_mean_auroc": state["best"], "best_epoch": state["best_epoch"] + 1})
    )


def fit(config: TrainConfig, splits: Splits, run_dir: Path) -> dict:
    """Train (or resume) in ``run_dir``; returns the history with the best validation mean AUROC."""
    setup = set_up_training(config, splits, run_dir)
    state = setup.training.state
    for epoch in range(state["epoch"], config.epochs):
        if stops_early(state, epoch, config.early_stop_patience):
            log.info("early stop: no validation gain for %d epochs", config.early_stop_patience)
            break
        keep_epoch(setup, run_epoch(setup, epoch))
    finish_training(setup)
    return state
