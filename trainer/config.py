"""Run configuration: a YAML file plus ``--set key=value`` overrides, saved resolved with every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cxr_desktop.core.preprocess import PreprocessSpec


@dataclass
class TrainConfig:
    name: str = "run"
    out_dir: str = "runs"
    # data
    dataset: str = "nih"  # "nih" | "folder" | "csv"
    images: str = ""  # NIH image root, local folder root, or CSV file
    labels_csv: str = ""  # NIH Data_Entry_2017*.csv(.gz)
    train_list: str = ""  # NIH train_val_list.txt
    test_list: str = ""  # NIH test_list.txt
    cache: str = ""  # uint8 cache made by `cxr-train cache` (optional)
    binary: str = ""  # train one finding vs rest (others masked out of the loss)
    positive_class: str = "cardiomegaly"  # local data: the folder/label value that means the finding
    val_fraction: float = 0.1
    max_train_images: int = 0  # 0 = all
    class_counts: dict[str, int] = field(default_factory=dict)  # local data: cap per class, e.g. {other: 2000}
    balance: str = "none"  # "none" | "oversample" | "weighted"
    oversample_to: int = 0  # minority class count after oversampling (0 = match the majority)
    # model
    architecture: str = "efficientnet_lite0"
    init: str = "imagenet"  # "imagenet" | "scratch" | "checkpoint:PATH"
    preprocessing: dict[str, Any] = field(default_factory=lambda: PreprocessSpec().to_dict())
    augment: list[str] = field(default_factory=lambda: ["rotate:5"])
    # optimisation
    epochs: int = 5
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine" | "plateau"
    pos_weight: bool = False
    early_stop_patience: int = 3
    seed: int = 0
    workers: int = 0
    precision: str = "auto"  # "auto" | "fp32" | "bf16"
    device: str = "auto"

    def spec(self) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self.preprocessing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """YAML file (optional) + ``key=value`` overrides (values parsed as YAML; dots reach nested keys)."""
    data: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config must be a mapping")
        data.update(loaded)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        _set_path(data, key.strip(), yaml.safe_load(raw))
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}")
    if "preprocessing" in data:
        data["preprocessing"] = {**PreprocessSpec().to_dict(), **data["preprocessing"]}
    config = TrainConfig(**data)
    config.spec()  # validate early
    return config
