"""``cxr-train guard``: fit a bundle's input guard (``cxr_desktop.core.guard``) on real radiographs and measure it.

- the *reference* (the per-feature mean and spread the distance is measured from) is the model's training
  images (a label CSV or a folder, sampled) plus the upright NIH images of a seeded half of the patients;
- the distance cut-off is the 99th percentile of the other patients' upright NIH images;
- the orientation/polarity probe is a multinomial logistic regression on the standardised embeddings of the
  NIH images shown upright, rotated 90°/180°/270° and inverted;
- the mirror probe is a logistic regression on the guard features (the embedding and the feature map's
  left-minus-right differences of ``MIRROR_PAIRS`` column pairs, ``core.guard.guard_features``) of the NIH
  images upright and mirrored left-right; its
  cut-off lets ``MIRROR_FALSE_ALARMS`` of upright films through as mirrored, judged by a probe fitted on the
  other patient half (a two-fold cross-fit inside the fit).

It is measured by patient-wise cross-fitting: the NIH patients are dealt into ``FOLDS`` folds, and every image
gets its verdicts (untouched: false alarms; rotated and inverted: caught) from a guard fitted, as above, on the
other folds only. The shipped guard is then fitted on all of them, and measured on a folder of images that are
not chest radiographs, which no fit sees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from cxr_desktop.core.architectures import cam_activation, classifier_head, forward_with_features
from cxr_desktop.core.guard import GUARD_NAME, OK, PROBE_CLASSES, InputGuard, guard_features
from cxr_desktop.core.preprocess import PreprocessSpec, normalize_input, resize_to_input, to_uint8
from cxr_desktop.studies.reader import read_study
from cxr_desktop.studies.study import StudyError

log = logging.getLogger(__name__)

VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "upright": lambda g: g,
    "rotated_90": lambda g: np.rot90(g, 1),
    "rotated_180": lambda g: np.rot90(g, 2),
    "rotated_270": lambda g: np.rot90(g, 3),
    "inverted": lambda g: 255 - g,
}
assert tuple(VARIANTS) == PROBE_CLASSES
MIRRORED = "mirrored"  # the mirror probe's variant, beside the orientation/polarity probe's
ALL_VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    **VARIANTS,
    MIRRORED: lambda g: np.ascontiguousarray(g[:, ::-1]),
}
# the share of upright films (not in the probe's fit) the mirror cut-off calls mirrored. Measured by the 5-fold
# cross-fit on the 1113 NIH films (v3 weights): 0.01 caught 74 % of mirrored films at +0.7 % false alarms on
# upright ones, 0.02 caught 83 % at +1.3 % (with the halves instead of the column pairs: 71 % / 78 %)
MIRROR_FALSE_ALARMS = 0.02
# the feature map's column pairs (mirrored about the centre) whose differences the mirror probe reads: all three
# of a 7-column map (224 px input); fewer where the map is narrower
MIRROR_PAIRS = 3
CUTOFF_PERCENTILE = 99.0
FOLDS = 5
FOLD_SEED = 0


class Embedder:
    """The guard features (``core.guard.guard_features``: the embedding, the classifier head's input, and the
    feature map's lateral differences in ``groups``) of uint8 gray images, in batches, on the CPU or a GPU."""

    def __init__(
        self,
        model: nn.Module,
        architecture: str,
        spec: PreprocessSpec,
        device: torch.device,
        batch_size: int = 32,
        groups: int | None = None,
    ) -> None:
        self.model, self.architecture = model.eval().to(device), architecture
        self.spec, self.device, self.batch_size = spec, device, batch_size
        self.dims = classifier_head(self.model).in_features
        # the lateral differences: ``groups`` (an existing guard's ``mirror_groups``), else set from the feature
        # map's width at the first batch, up to MIRROR_PAIRS column pairs
        self.fixed_groups, self.groups = groups, groups or 1

    def __call__(self, grays: Iterable[np.ndarray]) -> np.ndarray:
        inputs = [resize_to_input(np.ascontiguousarray(g), self.spec) for g in grays]
        out = []
        for start in range(0, len(inputs), self.batch_size):
            batch = normalize_input(torch.from_numpy(np.stack(inputs[start : start + self.batch_size])), self.spec)
            with torch.inference_mode():
                _, embedding, maps = forward_with_features(self.model, self.architecture, batch.to(self.device))
            self.groups = self.fixed_groups or max(1, min(MIRROR_PAIRS, maps.shape[-1] // 2))
            activation = cam_activation(self.architecture)
            embeddings, maps = embedding.float().cpu().numpy(), maps.float().cpu().numpy()
            out.append(guard_features(embeddings, maps, activation, self.groups))
        return np.concatenate(out) if out else np.zeros((0, (1 + self.groups) * self.dims), np.float32)


def read_gray(path: Path) -> np.ndarray | None:
    """A study as a display-polarity uint8 image through the app's own reader; None (logged) if refused."""
    try:
        return to_uint8(read_study(path).image)
    except StudyError as exc:
        log.warning("skipped %s: %s", path.name, exc.reason)
        return None


def embed_variants(embed: Embedder, paths: list[Path], chunk: int = 64) -> dict[str, np.ndarray]:
    """Each image's guard features in every variant, mirrored included (decoded once per image)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ALL_VARIANTS}
    for start in range(0, len(paths), chunk):
        grays = [g for g in (read_gray(p) for p in paths[start : start + chunk]) if g is not None]
        for name, vary in ALL_VARIANTS.items():
            parts[name].append(embed([vary(g) for g in grays]))
        done = min(start + chunk, len(paths))
        log.info("embedded %d/%d images in %d variants", done, len(paths), len(ALL_VARIANTS))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def fit_guard(
    reference: np.ndarray,
    validation: np.ndarray,
    tune: dict[str, np.ndarray],
    components: int = 64,
    regularisation: float = 0.01,
    half: np.ndarray | None = None,
    dims: int | None = None,
) -> InputGuard:
    """The guard from ``reference`` embeddings (mean, spread, principal components), upright ``validation``
    embeddings that are not in the reference (the distance cut-off: their 99th percentile), and the tune
    images in every variant (the orientation/polarity probe). When ``tune`` has the mirrored variant, every
    array holds guard features (the embedding, ``dims`` wide, default half the width, then its lateral
    differences) and the guard gets a mirror probe, whose cut-off is judged across ``half`` (a patient half of
    the tune images; default: every other image)."""
    from sklearn.linear_model import LogisticRegression

    full = tune
    if MIRRORED in tune:
        dims = dims or reference.shape[1] // 2
        reference, validation = reference[:, :dims], validation[:, :dims]
        tune = {name: tune[name][:, :dims] for name in VARIANTS}
    mean = reference.mean(axis=0)
    spread = reference.std(axis=0)
    scale = np.maximum(spread, 1e-3 * float(spread.mean()) + 1e-6)  # a feature constant on the reference
    _, singular, directions = np.linalg.svd(reference - mean, full_matrices=False)
    variance = singular**2 / max(len(reference) - 1, 1)
    kept = min(components, len(variance) - 1)
    floor = 1e-6 * float(variance[0]) + 1e-12
    residual = max(float(variance[kept:].sum()) / (reference.shape[1] - kept), floor)
    features = np.concatenate([(tune[name] - mean) / scale for name in VARIANTS])
    classes = np.repeat(np.arange(len(VARIANTS)), [len(tune[name]) for name in VARIANTS])
    probe = LogisticRegression(C=regularisation, max_iter=5000).fit(features, classes)
    parts = (mean, scale, directions[:kept], np.maximum(variance[:kept], floor), residual)
    unfitted = InputGuard(*parts, 1.0, probe.coef_, probe.intercept_)
    cutoff = float(np.percentile(unfitted.distances(validation), CUTOFF_PERCENTILE))
    guard = InputGuard(*parts, cutoff, probe.coef_, probe.intercept_)
    if MIRRORED in full:
        inner = half if half is not None else np.arange(len(full["upright"])) % 2 == 0
        mirror_mean, mirror_scale, weights, bias, mirror_cutoff = fit_mirror_probe(
            full["upright"], full[MIRRORED], inner, regularisation
        )
        guard.mirror_mean, guard.mirror_scale, guard.mirror_weights = mirror_mean, mirror_scale, weights
        guard.mirror_bias, guard.mirror_cutoff = bias, mirror_cutoff
    guard.check()
    return guard


def _mirror_probe(upright: np.ndarray, mirrored: np.ndarray, regularisation: float):
    """(mean, scale, weights, bias) of a logistic regression, mirrored against upright guard features."""
    from sklearn.linear_model import LogisticRegression

    features = np.concatenate([upright, mirrored]).astype(np.float64)
    mean, spread = features.mean(axis=0), features.std(axis=0)
    scale = np.maximum(spread, 1e-3 * float(spread.mean()) + 1e-6)
    classes = np.repeat([0, 1], [len(upright), len(mirrored)])
    probe = LogisticRegression(C=regularisation, max_iter=5000).fit((features - mean) / scale, classes)
    return mean, scale, probe.coef_[0], float(probe.intercept_[0])


def _mirror_score(probe, features: np.ndarray) -> np.ndarray:
    mean, scale, weights, bias = probe
    return ((features - mean) / scale) @ weights + bias


def fit_mirror_probe(
    upright: np.ndarray, mirrored: np.ndarray, half: np.ndarray, regularisation: float = 0.01
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """The mirror probe on all the films, and its cut-off: the score that ``MIRROR_FALSE_ALARMS`` of the upright
    films exceed when each half of them (``half``: a patient half) is scored by a probe fitted on the other."""
    unseen = np.empty(len(upright))
    for side in (half, ~half):
        unseen[side] = _mirror_score(_mirror_probe(upright[~side], mirrored[~side], regularisation), upright[side])
    mean, scale, weights, bias = _mirror_probe(upright, mirrored, regularisation)
    return mean, scale, weights, bias, float(np.quantile(unseen, 1.0 - MIRROR_FALSE_ALARMS))


def measure(guard: InputGuard, sets: dict[str, np.ndarray]) -> dict[str, dict]:
    """For each named set of embeddings: how many, the share not ``ok``, and the count of each verdict."""
    return summarise({name: guard.verdicts(embeddings) for name, embeddings in sets.items()})


def summarise(verdicts: dict[str, list[str]]) -> dict[str, dict]:
    """For each named list of verdicts: how many, the share not ``ok``, and the count of each verdict."""
    result = {}
    for name, given in verdicts.items():
        counts = {v: given.count(v) for v in sorted(set(given))}
        flagged = sum(n for v, n in counts.items() if v != OK)
        result[name] = {"n": len(given), "flagged": flagged, "rate": flagged / max(len(given), 1), **counts}
    return result


def fit_on_patients(
    training: np.ndarray, nih: dict[str, np.ndarray], patients: list[str], seed: int, **fit_options
) -> InputGuard:
    """The guard from the model's ``training`` embeddings and NIH images in every variant: the upright images of a
    seeded half of the ``patients`` join the distance reference, the other half sets the cut-off, and all of
    them train the probe."""
    in_reference = _patient_half(patients, seed)
    reference = np.concatenate([training, nih["upright"][in_reference]])
    return fit_guard(reference, nih["upright"][~in_reference], nih, half=in_reference, **fit_options)


def patient_folds(patients: list[str], folds: int = FOLDS, seed: int = FOLD_SEED) -> np.ndarray:
    """Each image's fold: the patients shuffled with ``seed`` and dealt in turn, so a patient's images share one."""
    unique = sorted(set(patients))
    fold_of = {unique[i]: turn % folds for turn, i in enumerate(np.random.default_rng(seed).permutation(len(unique)))}
    return np.array([fold_of[p] for p in patients], dtype=int)


def cross_fitted_verdicts(
    training: np.ndarray, nih: dict[str, np.ndarray], patients: list[str], folds: int = FOLDS, **fit_options
) -> dict[str, list[str]]:
    """Every NIH image's verdict in every variant, from a guard fitted (``fit_on_patients``) without its fold."""
    fold = patient_folds(patients, folds)
    verdicts: dict[str, list[str]] = {name: [""] * len(patients) for name in nih}
    for k in range(folds):
        held_out, rest = np.flatnonzero(fold == k), fold != k
        kept = {name: embeddings[rest] for name, embeddings in nih.items()}
        guard = fit_on_patients(training, kept, [patients[i] for i in np.flatnonzero(rest)], k, **fit_options)
        for name in nih:
            for i, verdict in zip(held_out, guard.verdicts(nih[name][held_out]), strict=True):
                verdicts[name][i] = verdict
        log.info("fold %d/%d: %d images held out, cut-off %.3f", k + 1, folds, len(held_out), guard.distance_cutoff)
    return verdicts


def save_guard(folder: Path, guard: InputGuard) -> Path:
    path = folder / GUARD_NAME
    guard.save(path)
    return path


def non_chest_grays(folder: Path) -> tuple[list[str], list[np.ndarray]]:
    """Every image file in ``folder`` (PNG/JPEG through OpenCV, DICOM pixels as stored): the guard must call
    each of them not a chest radiograph."""
    names, grays = [], []
    for path in sorted(folder.iterdir()):
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.suffix.lower() != ".dcm" else None
        if gray is None:
            log.warning("skipped %s: not an image OpenCV reads", path.name)
            continue
        names.append(path.name)
        grays.append(gray)
    return names, grays


def reference_paths(source: Path, limit: int, seed: int = 0) -> list[Path]:
    """Up to ``limit`` training images, drawn with ``seed``: the rows of a label CSV (``path,label``, as
    for training) or the images under a folder."""
    if source.is_file():
        from trainer.data.local import read_label_csv

        paths = [row.path for row in read_label_csv(source)]
    else:
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm"))
    if not paths:
        raise ValueError(f"no training images in {source}")
    picked = np.random.default_rng(seed).permutation(len(paths))[:limit]
    return [paths[i] for i in sorted(picked)]


def _patient_half(patients: list[str], seed: int = 0) -> np.ndarray:
    """True for the images of a seeded half of the patients (a patient's images stay together)."""
    unique = sorted(set(patients))
    chosen = {unique[i] for i in np.random.default_rng(seed).permutation(len(unique))[: len(unique) // 2]}
    return np.array([p in chosen for p in patients], dtype=bool)


def guard_command(args) -> int:
    """Measure the guard by cross-fitting, fit it on all the NIH images, and write it into the bundle (its card
    resealed); prints the measurement."""
    from cxr_desktop.core.bundle import load_bundle
    from cxr_desktop.core.device import resolve_device
    from trainer.external import nih_labelled
    from trainer.leakage import bundle_signatures, check_overlap

    if args.folds < 2:
        raise SystemExit("cxr-train guard: --folds must be at least 2 (each fold is judged by a guard fit on others)")
    bundle = load_bundle(args.bundle)
    embed = Embedder(bundle.model, bundle.card.architecture, bundle.card.spec, resolve_device(args.device))
    # NIH films that are copies of the model's training images would sit closer to the reference than unseen
    # films do, and lower the cut-off: they are left out (trainer.leakage), as from every evaluation
    images, overlap = check_overlap(nih_labelled(args.images, args.labels), bundle_signatures(bundle))
    patients = list(images.table.patients)
    nih = embed_variants(embed, list(images.table.paths))
    training = embed([g for g in map(read_gray, reference_paths(args.reference, args.max_reference)) if g is not None])
    options = {"components": args.components, "regularisation": args.regularisation, "dims": embed.dims}
    crossed = cross_fitted_verdicts(training, nih, patients, args.folds, **options)
    verdicts = {f"NIH films, {name.replace('_', ' ')} ({args.folds}-fold cross-fit)": v for name, v in crossed.items()}
    guard = fit_on_patients(training, nih, patients, FOLD_SEED, **options)
    if args.non_chest:
        names, grays = non_chest_grays(args.non_chest)
        verdicts["not chest radiographs (shipped guard)"] = given = guard.verdicts(embed(grays))
        missed = [n for n, v in zip(names, given, strict=True) if v == OK]
        log.info("non-chest images the guard passed: %s", ", ".join(missed) or "none")
    measured = summarise(verdicts)
    how = (
        f"distance reference: {len(training)} training images from {args.reference.name} and the NIH films of half "
        f"the patients ({args.components} principal components); cut-off: {CUTOFF_PERCENTILE:g}th percentile of "
        f"the other half's films; probe: all {len(patients)} NIH films x {len(VARIANTS)} variants; mirror probe: "
        f"the same films upright and mirrored ({embed.groups} column pairs), cut-off at {MIRROR_FALSE_ALARMS:.1%} "
        "false alarms inside the fit. "
        "Measured by "
        f"{args.folds}-fold patient-wise cross-fitting: each NIH film judged by a guard fitted the same way "
        "without its patient's fold"
    )
    how += (
        f"; {overlap['excluded']} NIH films that are copies of training images left out"
        if overlap["checked"]
        else "; NIH films not checked for copies of training images (the bundle has no training signatures)"
    )
    _write_into_bundle(args.bundle, guard, how, measured)
    print("| set | n | not ok | rate |\n|---|---:|---:|---:|")
    for name, row in measured.items():
        print(f"| {name} | {row['n']} | {row['flagged']} | {row['rate']:.3f} |")
    return 0


def _write_into_bundle(folder: Path, guard: InputGuard, how: str, measured: dict[str, dict]) -> None:
    """Save the guard beside the weights and reseal the card with its checksum, cut-off and measurement."""
    import json

    from cxr_desktop.core.bundle import CARD_NAME, load_bundle, sha256_of, write_card

    save_guard(folder, guard)
    data = json.loads((folder / CARD_NAME).read_text(encoding="utf-8"))
    data.update(
        guard_file=GUARD_NAME,
        guard_sha256=sha256_of(folder / GUARD_NAME),
        guard={
            "distance_cutoff": guard.distance_cutoff,
            "min_confidence": guard.min_confidence,
            **({"mirror_cutoff": guard.mirror_cutoff} if guard.has_mirror_probe else {}),
            "how": how,
            "measured": measured,
        },
    )
    write_card(folder, data)
    load_bundle(folder)  # the resealed bundle loads, guard included
