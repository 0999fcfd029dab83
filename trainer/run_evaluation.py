"""A finished run ready to evaluate: its config and best weights, its splits rebuilt, each split scored once,
and thresholds chosen on its validation split. ``cxr-train export``, ``evaluate --run`` and ``experiment``
all start here."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from cxr_desktop.core.bundle import model_from_weights
from cxr_desktop.core.labels import FINDINGS, URGENT_FINDING
from cxr_desktop.core.preprocess import PreprocessSpec
from trainer.config import TrainConfig, load_config
from trainer.data.samples import SampleTable, Splits
from trainer.evaluate import labelled_findings, predict_table, thresholds_on
from trainer.fit import BEST
from trainer.run import build_splits

log = logging.getLogger(__name__)
SplitName = Literal["train", "val", "test"]
DEFAULT_SENSITIVITY = 0.9  # the operating point evaluate and experiment report, and export's default


@dataclass
class RunEvaluation:
    """A run's model on its own splits. Probabilities are computed on first use and kept, so a split is
    scored once however many thresholds and metrics are taken from it."""

    run_dir: Path
    config: TrainConfig
    model: torch.nn.Module
    splits: Splits
    device: str = "auto"
    _probabilities: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def open(cls, run_dir: Path, device: str = "auto") -> RunEvaluation:
        """Load ``run_dir``'s config and best weights and rebuild its splits from the config's data."""
        run_dir = Path(run_dir)
        config = load_config(run_dir / "config.yaml")
        model = model_from_weights(config.architecture, run_dir / BEST, len(FINDINGS)).eval()
        return cls(run_dir, config, model, build_splits(config), device)

    @property
    def spec(self) -> PreprocessSpec:
        return self.config.spec()

    @property
    def trained_findings(self) -> list[str]:
        """The findings with a positive label in any split: what the run was trained on."""
        return labelled_findings([table for _, table in self.splits.items()])

    @property
    def urgent_finding(self) -> str:
        return self.config.binary or URGENT_FINDING

    def table(self, split: SplitName) -> SampleTable:
        return dict(self.splits.items())[split]

    def probabilities(self, split: SplitName) -> np.ndarray:
        """The model's probabilities (images x findings) on ``split``, scored on first use."""
        if split not in self._probabilities:
            table = self.table(split)
            log.info("scoring the %s split of %s (%d images)", split, self.run_dir.name, len(table))
            self._probabilities[split] = predict_table(self.model, table, self.spec, self.config.cache, self.device)
        return self._probabilities[split]

    def thresholds(self, sensitivity: float = DEFAULT_SENSITIVITY) -> dict[str, float]:
        """Per labelled finding, the threshold that reaches ``sensitivity`` on the validation split."""
        return thresholds_on(self.splits.val.labels, self.probabilities("val"), sensitivity)

    def history(self) -> list[dict]:
        """One record per trained epoch (``metrics.jsonl``)."""
        lines = (self.run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line]

    def data_info(self) -> dict:
        """What the run recorded about its data and code (``data.json``)."""
        return json.loads((self.run_dir / "data.json").read_text(encoding="utf-8"))
