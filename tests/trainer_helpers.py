"""A tiny synthetic folder dataset (large vs normal heart) and a config for fast trainer tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cxr_desktop.studies.synthetic import synthetic_chest

TINY_CONFIG = """
name: tiny
dataset: folder
images: {root}
binary: Cardiomegaly
positive_class: cardiomegaly
architecture: resnet18
init: scratch
preprocessing: {{input_size: 32, resize: letterbox, contrast: none, normalization: imagenet, channels: 3}}
augment: ["rotate:5"]
epochs: 3
batch_size: 8
lr: 0.001
early_stop_patience: 5
out_dir: {out}
precision: fp32
device: cpu
"""


def textured_chest(size: int, heart_ratio: float, seed: int) -> np.ndarray:
    """A synthetic chest with a texture of its own, as every real film has: plain synthetic chests differ only
    by faint noise, so the leakage check (trainer.overlap) rightly takes them for copies of one another."""
    image = synthetic_chest(size, heart_ratio=heart_ratio, seed=seed).astype(np.float32)
    texture = cv2.GaussianBlur(np.random.default_rng(seed + 7919).normal(0, 1, (size, size)), (0, 0), size / 48)
    return np.clip(image + texture * (18 / texture.std()), 0, 255).astype(np.uint8)


def make_folder_dataset(root: Path, per_class: int = 12) -> Path:
    for split, count in (("train", per_class), ("val", per_class // 2), ("test", per_class // 2)):
        for cls, ratio in (("cardiomegaly", 0.62), ("other", 0.38)):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                seed = hash((split, cls, i)) % 10_000
                cv2.imwrite(str(folder / f"{i}.png"), textured_chest(64, ratio, seed))
    return root


def write_config(tmp: Path, root: Path, **extra: str) -> Path:
    text = TINY_CONFIG.format(root=root, out=tmp / "runs")
    text += "".join(f"{k}: {v}\n" for k, v in extra.items())
    path = tmp / "tiny.yaml"
    path.write_text(text)
    return path


def make_csv_dataset(root: Path, per_class: int = 6, csv_folder: str = "labels") -> Path:
    """Images under ``root/images/`` and a label CSV in ``root/csv_folder/`` whose paths are relative to it
    (``../images/...``), train and test rows, patients in pairs; returns the CSV path."""
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["path,label,patient_id,split"]
    for split in ("train", "test"):
        for cls, ratio in (("cardiomegaly", 0.62), ("other", 0.38)):
            for i in range(per_class):
                name = f"{split}-{cls}-{i}.png"
                cv2.imwrite(str(folder / name), textured_chest(64, ratio, i + (7 if cls == "other" else 0)))
                lines.append(f"../images/{name},{cls},{split}-{cls}-p{i // 2},{split}")
    csv_path = root / csv_folder / "labels.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path
