"""The leakage check: the same film is found through what real copies go through, other films are not, and
the real copies between the NIH images and the local set are found image by image."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from trainer_helpers import textured_chest

from trainer.cli import main as train_main
from trainer.overlap import (
    THRESHOLD,
    OverlapError,
    SignatureSet,
    band_passed,
    coarse,
    collect_images,
    find_copies,
    load_signatures,
    match_one,
    reference_signatures,
    save_signatures,
    window,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The best similarity of ``a`` (the copy, searched over crops) to ``b`` (the stored reference)."""
    references = SignatureSet(["b"], window(band_passed(b))[None], {})
    return match_one(band_passed(a), references, coarse(references.signatures))[0][1]


def _noise_pixels(image: np.ndarray, share: float = 0.02, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = image.copy()
    hit = rng.random(image.shape) < share
    out[hit] = rng.integers(0, 256, int(hit.sum()))
    return out


COPIES = {
    "contrast boost": lambda g: np.clip(g.astype(np.float32) * 1.4 - 40, 0, 255).astype(np.uint8),
    "gamma 0.6": lambda g: (255 * (g / 255.0) ** 0.6).astype(np.uint8),
    "noise pixels": _noise_pixels,
    "resized to 96 px": lambda g: cv2.resize(g, (96, 96), interpolation=cv2.INTER_AREA),
    "16-bit, requantised": lambda g: (g.astype(np.uint16) * 257 + 100).astype(np.uint16),
    "4 % cropped from each side": lambda g: g[10:-10, 10:-10],
    "5 % cropped from the top": lambda g: g[13:],
    "black border 12 %": lambda g: cv2.copyMakeBorder(g, 30, 30, 30, 30, cv2.BORDER_CONSTANT, value=0),
}


@pytest.mark.parametrize("change", list(COPIES))
def test_a_changed_copy_is_the_same_film(change):
    film = textured_chest(256, 0.55, seed=5)
    assert similarity(COPIES[change](film), film) >= THRESHOLD


def test_other_films_are_not_copies():
    films = [textured_chest(256, 0.4 + 0.01 * (i % 20), seed=100 + i) for i in range(12)]
    worst = max(similarity(a, b) for i, a in enumerate(films) for j, b in enumerate(films) if i != j)
    assert worst < THRESHOLD


def test_signatures_round_trip_and_a_changed_method_is_refused(tmp_path):
    films = [textured_chest(128, 0.5, seed=i) for i in range(3)]
    paths = []
    for i, film in enumerate(films):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), film)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    signatures = reference_signatures([*paths, tmp_path / "broken.png"], workers=1)
    assert len(signatures.names) == 3 and set(signatures.errors) == {str(tmp_path / "broken.png")}
    save_signatures(tmp_path / "sig.safetensors", signatures)
    loaded = load_signatures(tmp_path / "sig.safetensors")
    assert loaded.names == signatures.names
    assert np.abs(loaded.signatures - signatures.signatures).max() < 0.01, "int8 storage keeps the signature"
    with pytest.raises(OverlapError, match="signatures made by"):
        SignatureSet.from_stored(np.zeros((1, 4), np.int8), {"method": "older", "names": '["a"]'})


def test_overlap_command_takes_folders_files_and_label_csvs(tmp_path, capsys):
    reference, images = tmp_path / "train", tmp_path / "eval"
    (reference / "cardiomegaly").mkdir(parents=True)
    images.mkdir()
    rows = ["path,label"]
    for i in range(6):
        cv2.imwrite(str(reference / "cardiomegaly" / f"{i}.png"), textured_chest(128, 0.6, seed=i))
        rows.append(f"cardiomegaly/{i}.png,cardiomegaly")
    (reference / "labels.csv").write_text("\n".join(rows) + "\n")
    boosted = COPIES["contrast boost"](textured_chest(128, 0.6, seed=4))
    cv2.imwrite(str(images / "copy.png"), boosted)
    cv2.imwrite(str(images / "other.png"), textured_chest(128, 0.6, seed=77))
    for source in (reference, reference / "labels.csv"):
        out = tmp_path / f"pairs-{source.name}.csv"
        assert train_main(["overlap", "--reference", str(source), "--images", str(images), "--out", str(out)]) == 0
        pairs = list(csv.DictReader(out.open()))
        assert [(Path(p["image"]).name, Path(p["reference"]).name) for p in pairs] == [("copy.png", "4.png")]
        assert float(pairs[0]["similarity"]) >= THRESHOLD
    assert "1 of 2 images are the same film" in capsys.readouterr().out
    assert train_main(["overlap", "--reference", str(reference), "--images", str(images), "--out", str(tmp_path)]) == 2


def _require_shared() -> None:
    if not SHARED.is_dir():
        if os.environ.get("CXR_REQUIRE_SHARED_DATA"):
            pytest.fail(f"{SHARED} is required (CXR_REQUIRE_SHARED_DATA is set)")
        pytest.skip("../shared/data is absent")


def _nih(name: str) -> Path:
    sample = SHARED / "nih14-sample" / "images" / name
    return sample if sample.exists() else SHARED / "nih14-extra" / "images" / name


def test_the_known_nih_copies_of_local_films_are_found_and_nothing_else():
    """The 65 pairs the data README lists (and the one more this check found: 00014477_000.png is
    train/cardiomegaly/2170.png), among 400 other local films and 100 other NIH films."""
    _require_shared()
    local = SHARED / "cardiomegaly-local"
    known = {(r["nih_image"], r["local_image"]) for r in csv.DictReader(open(SHARED / "nih-copies-in-local.csv"))}
    known.add(("00014477_000.png", "train/cardiomegaly/2170.png"))
    copied_local = sorted({loc for _, loc in known})
    others = sorted(str(p.relative_to(local)) for p in collect_images([local]))
    others = random.Random(0).sample([o for o in others if o not in set(copied_local)], 400)
    names = copied_local + others
    references = reference_signatures([local / n for n in names], names)
    copied_nih = {n for n, _ in known}
    folders = [SHARED / "nih14-sample" / "images", SHARED / "nih14-extra" / "images"]
    nih = sorted(p.name for p in collect_images(folders))
    sample = sorted(copied_nih) + random.Random(1).sample([n for n in nih if n not in copied_nih], 100)
    pairs, errors = find_copies([_nih(n) for n in sample], references)
    found = {(Path(p.image).name, p.reference) for p in pairs}
    assert not errors
    assert found == known, f"missed {sorted(known - found)[:5]}, extra {sorted(found - known)[:5]}"


@pytest.mark.slow
def test_local_test_films_are_not_copies_of_local_training_films():
    _require_shared()
    local = SHARED / "cardiomegaly-local"
    train = collect_images([local / "train"])
    pairs, _ = find_copies(collect_images([local / "test"]), reference_signatures(train))
    assert len(pairs) <= 2, pairs
