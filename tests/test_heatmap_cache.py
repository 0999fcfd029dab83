"""The viewer's bounded Grad-CAM cache."""

from pathlib import Path

import numpy as np

from cxr_desktop.ui.heatmap_cache import HeatmapCache


def test_maps_are_kept_as_uint8_and_the_least_recently_used_goes():
    cache = HeatmapCache(limit=2)
    rng = np.random.default_rng(0)
    maps = {Path(f"{i}.png"): rng.random((300, 200)).astype(np.float32) for i in range(3)}
    paths = list(maps)
    cache.put(paths[0], maps[paths[0]])
    cache.put(paths[1], maps[paths[1]])
    back = cache.get(paths[0])  # 0 is now the most recently used
    assert back.dtype == np.float32 and np.abs(back - maps[paths[0]]).max() <= 0.5 / 255 + 1e-6
    cache.put(paths[2], maps[paths[2]])
    assert paths[0] in cache and paths[2] in cache and paths[1] not in cache
    assert cache.get(paths[1]) is None and len(cache) == 2
    cache.clear()
    assert len(cache) == 0
