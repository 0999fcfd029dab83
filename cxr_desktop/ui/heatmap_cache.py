"""A bounded cache of Grad-CAM maps for the viewer: maps over the original image are large (a 3000x2500
DICOM's float32 map is 30 MB), so they are kept as uint8 and only the most recently used ones stay. A map is
kept under its study's identity (``Row.identity``: its file and its study's key): another study in the same
file never gets it."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np


class HeatmapCache:
    def __init__(self, limit: int = 32) -> None:
        self.limit = limit
        self._maps: OrderedDict[tuple[Path, str], np.ndarray] = OrderedDict()

    def __contains__(self, identity: tuple[Path, str]) -> bool:
        return identity in self._maps

    def __len__(self) -> int:
        return len(self._maps)

    def put(self, identity: tuple[Path, str], heatmap: np.ndarray) -> None:
        """Store a study's map in [0, 1]; the least recently used one goes when the cache is full."""
        self._maps[identity] = np.round(np.clip(heatmap, 0.0, 1.0) * 255).astype(np.uint8)
        self._maps.move_to_end(identity)
        while len(self._maps) > self.limit:
            self._maps.popitem(last=False)

    def get(self, identity: tuple[Path, str]) -> np.ndarray | None:
        """The map of the study ``identity`` names, in [0, 1] as float32 (quantised to 1/255), or None."""
        stored = self._maps.get(identity)
        if stored is None:
            return None
        self._maps.move_to_end(identity)
        return stored.astype(np.float32) / 255.0

    def discard(self, path: Path) -> None:
        """Forget the maps of ``path`` (its file now holds another study)."""
        for key in [key for key in self._maps if key[0] == Path(path)]:
            del self._maps[key]

    def clear(self) -> None:
        self._maps.clear()
