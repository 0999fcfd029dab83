"""An experiment file and its grid: the spec (with its base config), the named runs of the grid (every
combination of the grid's values, plus any extra runs) and every run's checked config."""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainer.config import (
    ConfigError,
    TrainConfig,
    config_from_dict,
    key_fields,
    parse_settings,
    set_path,
    unknown_key,
)

NAME_ORDER = ("augment", "init", "architecture", "seed")  # these lead a run's name (the earlier studies' names)


@dataclass
class GridRun:
    """One run of an experiment: its name, the values it sets on the base config, and its folder."""

    name: str
    values: dict[str, Any]
    run_dir: Path


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        return "+".join(f"{k}-{_short(v)}" for k, v in value.items()) or "none"
    text = str(value)
    return text.rsplit("/", 1)[-1] if text.startswith("checkpoint:") else text


def run_name(values: dict[str, Any]) -> str:
    """``key=value__key=value``, the keys of :data:`NAME_ORDER` first, safe as a folder name."""
    keys = [k for k in NAME_ORDER if k in values] + [k for k in values if k not in NAME_ORDER]
    name = "__".join(f"{k}={_short(values[k])}".replace(":", "") for k in keys)
    return re.sub(r"[^\w.=+,-]", "-", name)


def check_grid_keys(keys: list[str]) -> None:
    """Grid keys are config keys (dots reach nested ones: ``preprocessing.input_size``), not the run's place."""
    problems = []
    for key in keys:
        top = key.split(".", 1)[0]
        if top not in key_fields():
            problems.append(f"grid: {unknown_key(key)}")
        elif top in ("name", "out_dir"):
            problems.append(f"grid: {key!r} cannot vary (the experiment names and places its runs)")
    if problems:
        raise ConfigError(problems)


def expand(spec: dict[str, Any], folder: Path) -> list[GridRun]:
    """The runs of ``spec``'s grid (every combination) and its ``extra_runs``, each in ``folder/runs/NAME``."""
    grid = spec.get("grid", {})
    check_grid_keys([*grid, *(k for extra in spec.get("extra_runs", []) for k in extra)])
    for key, options in grid.items():
        if not isinstance(options, list) or not options:
            raise ConfigError([f"grid: {key} needs a non-empty list of values, got {options!r}"])
    keys = [k for k in NAME_ORDER if k in grid] + [k for k in grid if k not in NAME_ORDER]
    runs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        name = run_name(values)
        runs.append(GridRun(name, values, folder / "runs" / name))
    for extra in spec.get("extra_runs", []):  # runs outside the product, e.g. one more init
        values = dict(extra)
        runs.append(GridRun(run_name(values), values, folder / "runs" / run_name(values)))
    names = [run.name for run in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError([f"grid: two runs would share the folder {n!r}" for n in twice])
    return runs


def load_experiment_spec(config_path: Path, base_overrides: list[str] | None) -> dict[str, Any]:
    """The experiment file with its base config read in and changed by the file's ``base_overrides`` and
    then by ``base_overrides`` (``--set key=value``, checked like a training run's)."""
    spec = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    if isinstance(spec.get("base"), str):  # a base config file, relative to the experiment file
        spec["base"] = yaml.safe_load((config_path.parent / spec["base"]).read_text(encoding="utf-8"))
    for key, value in spec.get("base_overrides", {}).items():  # the study's own changes to its shared base
        set_path(spec["base"], key, value)
    for key, value in parse_settings(base_overrides or []):
        set_path(spec["base"], key, value)
    return spec


def grid_configs(spec: dict[str, Any], runs: list[GridRun]) -> dict[str, TrainConfig]:
    """Every run's checked config (base + its values), before any of them trains; all problems in one error."""
    configs, problems = {}, []
    for run in runs:
        data = copy.deepcopy(spec["base"])
        for key, value in {**run.values, "name": run.name}.items():
            set_path(data, key, copy.deepcopy(value))
        try:
            configs[run.name] = config_from_dict(data)
        except ConfigError as exc:
            problems += [f"{run.name}: {p}" for p in exc.problems]
    if problems:
        raise ConfigError(problems)
    return configs
