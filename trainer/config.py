"""Run configuration: a YAML file plus ``--set key=value`` overrides, saved resolved with every run.

Every key's type and default come from :class:`TrainConfig`, its one-line help from the field's metadata
(``cxr-train list keys`` prints them). :func:`load_config` checks every value before anything is written:
unknown keys, wrong types and unknown names fail with one line each and a "did you mean" where one fits.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
import typing
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cxr_desktop.core.device import DEVICE_NAMES, is_device_name
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.core.preprocess import Contrast, Normalization, PreprocessSpec, ResizePolicy


def _key(default: Any, help: str) -> Any:
    """A config field with its one-line help (the single source for ``cxr-train list keys``)."""
    if isinstance(default, dict | list):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    name: str = _key("run", "run folder name: the run is written to out_dir/name")
    out_dir: str = _key("runs", "folder that holds the run folders")
    # data
    dataset: str = _key("nih", "data: NIH ChestX-ray14 files, ROOT/{train,val,test}/CLASS/ folders, or a label CSV")
    images: str = _key("", "nih: image folder; folder: root holding train/ (val/, test/ optional); csv: the CSV file")
    labels_csv: str = _key("", "nih only: Data_Entry_2017*.csv(.gz); for csv data the CSV goes in `images`")
    train_list: str = _key("", "nih only: train_val_list.txt (the official patient-wise split)")
    test_list: str = _key("", "nih only: test_list.txt")
    cache: str = _key("", "uint8 cache folder made by `cxr-train cache` at the same size (empty: decode on the fly)")
    binary: str = _key("", "train this one finding vs rest, the other 13 masked out of the loss (empty: all 14)")
    positive_class: str = _key(
        "cardiomegaly", "folder/csv data: the class folder or CSV label that means the finding (CSV: also 1/true/yes)"
    )
    val_fraction: float = _key(0.1, "share of train patients held out for validation when there is no val split")
    max_train_images: int = _key(0, "keep a seeded, class-stratified sample of this many training images (0 = all)")
    class_counts: dict[str, int] = _key(
        {},
        "folder/csv data: seeded cap per class, {POSITIVE_CLASS: n, other: m}, e.g. {cardiomegaly: 1000, other: 2000}",
    )
    balance: str = _key("none", "class balance: oversample repeats minority images (oversample_to), weighted the loss")
    oversample_to: int = _key(
        0,
        "balance=oversample: the minority class's image count after oversampling (originals + repeats), an absolute "
        "number, not a ratio; above the majority's count it makes the minority the larger class (0 = match majority)",
    )
    # model
    architecture: str = _key("efficientnet_lite0", "model from the registry (`cxr-train list architectures`)")
    init: str = _key("imagenet", "imagenet, scratch, or checkpoint:PATH (a run folder or a .safetensors file)")
    preprocessing: dict[str, Any] = _key(
        PreprocessSpec().to_dict(), "the app's preprocessing spec; dotted overrides work: preprocessing.input_size=128"
    )
    augment: list[str] = _key(["rotate:5"], "augmentations in order, each `name` or `name:param` (list augmentations)")
    # optimisation
    epochs: int = _key(5, "number of epochs (>= 1)")
    batch_size: int = _key(32, "images per batch and process (>= 1)")
    lr: float = _key(3e-4, "AdamW learning rate (> 0)")
    weight_decay: float = _key(1e-4, "AdamW weight decay (>= 0)")
    schedule: str = _key("cosine", "lr schedule: cosine decays to 0 over the epochs, plateau cuts it x0.3 on a stall")
    warmup_epochs: float = _key(0.0, "cosine schedule: linear lr warm-up over this many epochs (a fraction is fine)")
    ema_decay: float = _key(0.0, "keep and validate an exponential moving average of the weights (0 = off, else < 1)")
    pos_weight: bool = _key(False, "weight each finding's positives by negatives/positives in the loss")
    early_stop_patience: int = _key(3, "stop after this many epochs without a validation gain")
    seed: int = _key(0, "seed of the split, sampling, augmentation and initialisation")
    workers: int = _key(0, "data-loader worker processes (0 = load in the main process)")
    precision: str = _key("auto", "training precision; auto = bf16 where the hardware supports it, else fp32")
    device: str = _key("auto", "auto (CUDA when present), cpu, cuda, cuda:N or mps")

    def spec(self) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self.preprocessing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": ("nih", "folder", "csv"),
    "balance": ("none", "oversample", "weighted"),
    "schedule": ("cosine", "plateau"),
    "precision": ("auto", "fp32", "bf16"),
}
PREPROCESS_CHOICES: dict[str, tuple[str, ...]] = {
    "resize": typing.get_args(ResizePolicy),
    "contrast": typing.get_args(Contrast),
    "normalization": typing.get_args(Normalization),
}
NIH_ONLY = ("labels_csv", "train_list", "test_list")
# common names for a key, for the "did you mean" of an unknown key
KEY_ALIASES = {
    "learning_rate": "lr", "arch": "architecture", "model": "architecture", "augmentation": "augment",
    "augmentations": "augment", "batch": "batch_size", "bs": "batch_size", "wd": "weight_decay",
    "patience": "early_stop_patience", "scheduler": "schedule", "labels": "labels_csv", "finding": "binary",
    "amp": "precision", "dtype": "precision",
}  # fmt: skip


class ConfigError(ValueError):
    """Config values that are wrong: one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        head = problems[0] if len(problems) == 1 else f"{len(problems)} problems in the config:"
        super().__init__(head if len(problems) == 1 else head + "".join(f"\n  {p}" for p in problems))


def did_you_mean(value: object, options: Iterable[str], aliases: dict[str, str] | None = None) -> str:
    """``"; did you mean 'x'?"`` for the closest option (difflib), or an empty string."""
    text = str(value)
    if aliases and text.lower() in aliases:
        return f"; did you mean {aliases[text.lower()]!r}?"
    match = difflib.get_close_matches(text, list(options), n=1, cutoff=0.6)
    if not match:
        match = difflib.get_close_matches(text.lower(), [o.lower() for o in options], n=1, cutoff=0.6)
        match = [o for o in options if match and o.lower() == match[0]][:1]
    return f"; did you mean {match[0]!r}?" if match else ""


def unknown_key(dotted: str) -> str:
    """The problem line for a key that is not a config key (its part before a dot), with a "did you mean"."""
    top = dotted.split(".", 1)[0]
    return f"unknown key {dotted!r}{did_you_mean(top, key_fields(), KEY_ALIASES)} (`cxr-train list keys`)"


def key_fields() -> dict[str, Any]:
    """The config keys in order: name -> dataclass field (``.type`` is the annotation as text)."""
    return {f.name: f for f in fields(TrainConfig)}


def default_of(name: str) -> Any:
    f = key_fields()[name]
    return f.default_factory() if f.default is MISSING else f.default


class _Bad(Exception):
    pass


def _coerce(kind: str, value: Any) -> Any:
    """``value`` as the field type ``kind`` (the annotation text); raises ``_Bad`` with the reason."""
    if kind == "str":
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise _Bad(f"expected text, got {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise _Bad(f"expected true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
        raise _Bad(f"expected a whole number, got {value!r}")
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, str):  # YAML reads 3e-4 (no dot) as text
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                return number
        raise _Bad(f"expected a number, got {value!r}")
    if kind == "list[str]":
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(v, str) for v in items):
            return list(items)
        raise _Bad(f"expected a list of names, got {value!r}")
    if kind.startswith("dict"):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _Bad(f"expected a mapping {{key: value}}, got {value!r}")
        if kind == "dict[str, int]":
            return {str(k): _coerce("int", v) for k, v in value.items()}
        return {str(k): v for k, v in value.items()}
    raise _Bad(f"unsupported type {kind}")  # pragma: no cover - a new field type


def _check_preprocessing(value: dict[str, Any]) -> list[str]:
    problems = []
    known = {f.name: f.type for f in fields(PreprocessSpec)}
    for key, raw in value.items():
        if key not in known:
            problems.append(f"preprocessing: unknown key {key!r}{did_you_mean(key, known)} (keys: {', '.join(known)})")
        elif key in PREPROCESS_CHOICES and raw not in PREPROCESS_CHOICES[key]:
            options = PREPROCESS_CHOICES[key]
            hint = did_you_mean(raw, options)
            problems.append(f"preprocessing.{key}: {raw!r} is not one of {', '.join(options)}{hint}")
        elif known[key] == "int" and (isinstance(raw, bool) or not isinstance(raw, int)):
            problems.append(f"preprocessing.{key}: expected a whole number, got {raw!r}")
        elif known[key] == "bool" and not isinstance(raw, bool):
            problems.append(f"preprocessing.{key}: expected true or false, got {raw!r}")
    if not problems:
        try:
            PreprocessSpec.from_dict(value)
        except (ValueError, TypeError) as exc:
            problems.append(f"preprocessing: {exc}")
    return problems


def _check_names(values: dict[str, Any]) -> list[str]:
    """Registry names (architecture, augmentations), finding, init and device."""
    from cxr_desktop.core import architectures
    from trainer.augment import REGISTRY

    problems = []
    arch = values.get("architecture")
    if arch is not None and not architectures.is_registered(arch):
        hint = did_you_mean(arch, architectures.available())
        problems.append(f"architecture: unknown {arch!r}{hint} (`cxr-train list architectures`)")
    for spec in values.get("augment") or []:
        name, colon, param = spec.partition(":")
        if name not in REGISTRY:
            hint = did_you_mean(name, REGISTRY)
            problems.append(f"augment: unknown augmentation {spec!r}{hint} (`cxr-train list augmentations`)")
            continue
        try:
            value = float(param) if colon else None
        except ValueError:
            problems.append(f"augment: {spec!r}: the parameter after ':' must be a number")
            continue
        try:
            REGISTRY[name].make(value)  # an augmentation refuses a parameter out of its range
        except ValueError as exc:
            problems.append(f"augment: {exc}")
    binary = values.get("binary")
    if binary and binary.replace("_", " ").lower() not in {f.replace("_", " ").lower() for f in FINDINGS}:
        problems.append(f"binary: unknown finding {binary!r}{did_you_mean(binary, FINDINGS)}")
    init = values.get("init")
    if init is not None and init not in ("imagenet", "scratch") and not (init.startswith("checkpoint:") and init[11:]):
        hint = did_you_mean(init, ("imagenet", "scratch"))
        problems.append(f"init: {init!r} is not imagenet, scratch or checkpoint:PATH{hint}")
    device = values.get("device")
    if device is not None and not is_device_name(device):
        hint = did_you_mean(device, [n for n in DEVICE_NAMES if n != "cuda:N"])
        problems.append(f"device: {device!r} is not {', '.join(DEVICE_NAMES)}{hint}")
    return problems


RANGES: dict[str, float] = {  # key: lowest value allowed
    "epochs": 1, "batch_size": 1, "max_train_images": 0, "oversample_to": 0, "early_stop_patience": 0, "seed": 0,
    "workers": 0, "weight_decay": 0,
}  # fmt: skip


def _check_ranges(values: dict[str, Any]) -> list[str]:
    problems = []
    for key, low in RANGES.items():
        if key in values and values[key] < low:
            problems.append(f"{key}: must be >= {low}, got {values[key]!r}")
    if "lr" in values and not values["lr"] > 0:
        problems.append(f"lr: must be > 0, got {values['lr']!r}")
    if values.get("warmup_epochs", 0) < 0:
        problems.append(f"warmup_epochs: must be >= 0, got {values['warmup_epochs']!r}")
    if values.get("warmup_epochs") and values.get("schedule") == "plateau":
        problems.append("warmup_epochs: works with schedule=cosine only")
    if not 0 <= values.get("ema_decay", 0) < 1:
        problems.append(f"ema_decay: must be 0 (off) or between 0 and 1, got {values['ema_decay']!r}")
    if "val_fraction" in values and not 0 < values["val_fraction"] < 1:
        problems.append(f"val_fraction: must be between 0 and 1 (exclusive), got {values['val_fraction']!r}")
    for key, count in values.get("class_counts", {}).items():
        if count < 0:
            problems.append(f"class_counts.{key}: must be >= 0, got {count}")
    name = values.get("name")
    if name is not None and (not name.strip() or name in (".", "..") or re.search(r"[/\\]", name)):
        problems.append(f"name: {name!r} must be a plain folder name (not empty, no '/')")
    return problems


def _check_dataset(values: dict[str, Any]) -> list[str]:
    """What each dataset needs, and the keys it would silently ignore."""
    dataset = values.get("dataset")
    if dataset not in CHOICES["dataset"]:
        return []
    if dataset == "nih":
        problems = [f"dataset nih needs '{key}'" for key in ("images", *NIH_ONLY) if not values.get(key)]
        if values.get("class_counts"):
            problems.append("class_counts: only for folder and csv data (dataset nih ignores it)")
        return problems
    problems = [] if values.get("images") else [f"dataset {dataset} needs 'images'"]
    for key in NIH_ONLY:
        if values.get(key):
            where = " (for csv data give the CSV file as `images`; its paths are relative to its folder)"
            problems.append(f"{key}: only for dataset nih, not {dataset}{where if dataset == 'csv' else ''}")
    return problems


def validate(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every value converted to its field type; raises :class:`ConfigError` naming every problem."""
    known = key_fields()
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in known:
            problems.append(unknown_key(key))
            continue
        try:
            values[key] = _coerce(str(known[key].type), raw)
        except _Bad as bad:
            problems.append(f"{key}: {bad}")
    for key, options in CHOICES.items():
        if key in values and values[key] not in options:
            hint = did_you_mean(values[key], options)
            problems.append(f"{key}: {values[key]!r} is not one of {', '.join(options)}{hint}")
    if "preprocessing" in values:
        values["preprocessing"] = {**PreprocessSpec().to_dict(), **values["preprocessing"]}
        problems += _check_preprocessing(values["preprocessing"])
    problems += _check_names(values) + _check_ranges(values)
    problems += _check_dataset({**{k: default_of(k) for k in known if k not in values}, **values})
    if problems:
        raise ConfigError(problems)
    return values


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """A checked :class:`TrainConfig` from plain values (missing keys take their defaults)."""
    return TrainConfig(**validate(data))


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``data[a][b] = value`` for ``dotted = "a.b"`` (only mappings can be reached into)."""
    keys = dotted.split(".")
    node = data
    for depth, key in enumerate(keys[:-1]):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError([f"{'.'.join(keys[: depth + 1])} is not a mapping, so {dotted!r} cannot be set"])
    node[keys[-1]] = value


def parse_settings(items: Iterable[str]) -> list[tuple[str, Any]]:
    """``--set key=value`` items as (key, value) pairs, values read as YAML (kept as text where they are not
    YAML), dots reaching nested keys; malformed items and unknown keys fail together, with a "did you mean"."""
    pairs, problems = [], []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"override {item!r} must look like key=value")
            continue
        if key.split(".", 1)[0] not in key_fields():
            problems.append(unknown_key(key))
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw  # kept as text; the field's type decides whether that is fine
        pairs.append((key, value))
    if problems:
        raise ConfigError(problems)
    return pairs


def read_values(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The values a YAML file (optional) and ``key=value`` overrides give, without defaults; only the
    overrides' keys are checked here, the values by :func:`validate`."""
    data: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"{path}: a config must be a mapping of key: value"])
        data.update(loaded)
    for key, value in parse_settings(overrides or []):
        set_path(data, key, value)
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """YAML file (optional) + ``key=value`` overrides (values parsed as YAML; dots reach nested keys), checked."""
    return config_from_dict(read_values(path, overrides))
