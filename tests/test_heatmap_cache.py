"""The viewer's bounded Grad-CAM cache."""

from pathlib import Path

import numpy as np

from cxr_desktop.ui.heatmap_cache import HeatmapCache


def test_maps_are_kept_as_uint8_and_the_least_recently_used_goes():
    cache = HeatmapCache(limit=2)
    rng = np.random.default_rng(0)
    maps = {(Path(f"{i}.png"), f"study-{i}"): rng.random((300, 200)).astype(np.float32) for i in range(3)}
    studies = list(maps)
    cache.put(studies[0], maps[studies[0]])
    cache.put(studies[1], maps[studies[1]])
    back = cache.get(studies[0])  # 0 is now the most recently used
    assert back.dtype == np.float32 and np.abs(back - maps[studies[0]]).max() <= 0.5 / 255 + 1e-6
    cache.put(studies[2], maps[studies[2]])
    assert studies[0] in cache and studies[2] in cache and studies[1] not in cache
    assert cache.get(studies[1]) is None and len(cache) == 2
    cache.clear()
    assert len(cache) == 0


def test_a_map_belongs_to_its_study_not_to_its_file():
    """The same file holding another study (a replaced DICOM) never gets the first study's map."""
    cache = HeatmapCache()
    path = Path("IM0001.dcm")
    cache.put((path, "study-a"), np.full((4, 4), 0.5, np.float32))
    assert (path, "study-a") in cache and (path, "study-b") not in cache
    assert cache.get((path, "study-b")) is None
    cache.put((Path("other.dcm"), "study-c"), np.zeros((4, 4), np.float32))
    cache.discard(path)
    assert (path, "study-a") not in cache and (Path("other.dcm"), "study-c") in cache
