"""The operating-point chooser: the model card's named points, each with the share of studies it flagged on
the images its thresholds were tuned (or validated) on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox

from cxr_desktop.inference.triage import PointRate, point_rates

if TYPE_CHECKING:
    from cxr_desktop.core.bundle import ModelCard


def point_tip(rate: PointRate, finding: str) -> str:
    lines = [f"{finding.replace('_', ' ')} threshold {rate.threshold:.3f}" if rate.threshold is not None else ""]
    if rate.flag_rate is not None:
        lines.append(f"Flagged {rate.flag_rate:.1%} of the studies on {rate.where}")
    if rate.sensitivity is not None and rate.specificity is not None:
        lines.append(f"sensitivity {rate.sensitivity:.0%}, specificity {rate.specificity:.0%}")
    if rate.flag_rate is None:
        lines.append("The model card records no flag rate at this threshold")
    return "\n".join(line for line in lines if line)


class OperatingPointBox(QComboBox):
    """Emits ``chosen(name)`` when the user picks another point (not when a new card fills the list)."""

    chosen = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setToolTip("The threshold that flags a study urgent, from the model card")
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.setEnabled(False)
        self.currentIndexChanged.connect(self._picked)

    def set_card(self, card: ModelCard, current: str) -> None:
        self.blockSignals(True)
        self.clear()
        for rate in point_rates(card):
            self.addItem(rate.label, rate.name)
            self.setItemData(self.count() - 1, point_tip(rate, card.urgent_finding), Qt.ItemDataRole.ToolTipRole)
        self.setCurrentIndex(max(self.findData(current), 0))
        self.blockSignals(False)
        self.setEnabled(self.count() > 1)

    def select(self, name: str) -> None:
        """Choose ``name`` as the user would (emits ``chosen``)."""
        index = self.findData(name)
        if index < 0:
            raise KeyError(f"operating point {name!r} not in the model card")
        self.setCurrentIndex(index)

    def _picked(self, index: int) -> None:
        name = self.itemData(index)
        if name:
            self.chosen.emit(name)
