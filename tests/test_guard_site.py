"""Per-site calibration of the input guard (issue 21, item 8): a site whose ordinary films sit a little away from
the reference gets cut-offs from its own films: few false alarms there, rotated/inverted/mirrored still caught."""

import json

import numpy as np
import pytest
from conftest import make_tiny_bundle

from cxr_desktop.core import bundle as B
from cxr_desktop.core.guard import OK
from trainer.guard import ALL_VARIANTS, VARIANTS, fit_guard, save_guard
from trainer.guard_site import calibrate, cutoffs, write_site_bundle

DIMS = 64


def _features(rng, n: int, site_shift: float = 0.0, dims: int = DIMS) -> dict[str, np.ndarray]:
    """Synthetic guard features as in tests/test_guard_mirror.py; ``site_shift`` moves every film of a site a
    little along one direction no variant uses (another detector's look)."""
    out = {}
    for i, name in enumerate(ALL_VARIANTS):
        embedding = rng.normal(size=(n, dims)) + (np.eye(dims)[i] * 6.0 if name in VARIANTS and i else 0.0)
        embedding += np.eye(dims)[dims - 1] * site_shift
        halves = rng.normal(size=(n, dims)) + (np.eye(dims)[0] * 6.0 if name == "mirrored" else 0.0)
        out[name] = np.hstack([embedding, halves])
    return out


def _guard_and_site(dims: int = DIMS):
    """A guard fitted on reference-like films, and two sets of a site's films (calibration, check)."""
    rng = np.random.default_rng(0)
    reference, validation = rng.normal(size=(400, dims)), rng.normal(size=(300, dims))
    tune = _features(rng, 300, dims=dims)
    guard = fit_guard(reference, validation, tune, components=4, regularisation=1.0, dims=dims)
    return guard, _features(rng, 600, 2.5, dims), _features(rng, 600, 2.5, dims)


@pytest.fixture(scope="module")
def guard_and_site():
    return _guard_and_site()


def _doubtful(guard, features) -> float:
    return float(np.mean([v != OK for v in guard.verdicts(features)]))


def test_site_films_called_doubtful_fall_to_the_target_and_changed_films_are_still_caught(guard_and_site):
    guard, site, check = guard_and_site
    assert _doubtful(guard, check["upright"]) > 0.05  # the NIH-fitted cut-offs doubt this site's films
    calibrated = calibrate(guard, site["upright"], target=0.01)
    assert _doubtful(calibrated, site["upright"]) <= 0.01
    assert _doubtful(calibrated, check["upright"]) <= 0.03  # films the calibration did not see
    for changed in ("rotated_90", "rotated_180", "inverted", "mirrored"):
        assert _doubtful(calibrated, check[changed]) > 0.9, changed


def test_cut_offs_only_ever_rise_and_the_guard_itself_is_untouched(guard_and_site):
    guard, _, _ = guard_and_site
    before = cutoffs(guard)
    rng = np.random.default_rng(5)
    typical = _features(rng, 400)["upright"]  # films like the reference: nothing to raise
    calibrated = calibrate(guard, typical, target=0.3)
    assert cutoffs(guard) == before
    assert all(cutoffs(calibrated)[k] >= v for k, v in before.items())
    assert calibrated.probe_weights is guard.probe_weights and calibrated.mean is guard.mean


def test_too_few_site_films_or_an_odd_target_are_refused(guard_and_site):
    guard, site, _ = guard_and_site
    with pytest.raises(ValueError, match="too few"):
        calibrate(guard, site["upright"][:50])
    with pytest.raises(ValueError, match="target"):
        calibrate(guard, site["upright"], target=0.7)


def test_the_site_bundle_is_a_resealed_copy_with_its_record(tmp_path):
    source = make_tiny_bundle(tmp_path / "shipped")
    guard, site, _ = _guard_and_site(B.load_bundle(source).model.fc.in_features)
    save_guard(source, guard)
    card = json.loads((source / B.CARD_NAME).read_text())
    card.update(
        guard_file="guard.safetensors",
        guard_sha256=B.sha256_of(source / "guard.safetensors"),
        guard={**cutoffs(guard), "how": "test"},
    )
    B.write_card(source, card)
    shipped_card = (source / B.CARD_NAME).read_bytes()
    calibrated = calibrate(guard, site["upright"])
    write_site_bundle(source, tmp_path / "site", calibrated, {"films": 600, "target": 0.01})
    assert (source / B.CARD_NAME).read_bytes() == shipped_card  # the given bundle is not changed
    loaded = B.load_bundle(tmp_path / "site")
    assert loaded.guard.distance_cutoff == pytest.approx(calibrated.distance_cutoff)
    assert loaded.guard.mirror_cutoff == pytest.approx(calibrated.mirror_cutoff)
    assert loaded.card.guard["site_calibration"]["films"] == 600


def test_features_without_the_differences_the_mirror_probe_reads_are_refused(guard_and_site):
    guard, site, _ = guard_and_site
    with pytest.raises(ValueError, match="lateral difference"):
        calibrate(guard, site["upright"][:, :DIMS])
