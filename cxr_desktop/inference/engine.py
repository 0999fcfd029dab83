"""The engine: owns one model on one device, reads and preprocesses studies in a thread pool that overlaps
the model, batches, and returns plain result objects. The GUI worker and ``cxr-triage`` share it."""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cxr_desktop.core.architectures import cam_activation
from cxr_desktop.core.bundle import BundleFormatError, LoadedBundle, bundle_notes, closed_form_head, load_bundle
from cxr_desktop.core.cam import closed_form_cams, map_to_image, scaled_maps
from cxr_desktop.core.card import CAM_FEATURES_NAME, EMBEDDING_NAME, INPUT_NAME, OUTPUT_NAME
from cxr_desktop.core.device import check_device_name
from cxr_desktop.core.guard import LATERAL, OK, guard_features
from cxr_desktop.core.labels import finding_index
from cxr_desktop.core.optional_torch import require_torch
from cxr_desktop.core.pixel_checks import pixel_verdict
from cxr_desktop.core.preprocess import border_box, normalize_array, resize_to_input, to_uint8
from cxr_desktop.inference.onnx_scorer import (
    OnnxScorer,
    check_onnx_input,
    onnxruntime_available,
    open_verified,
    sigmoid,
)
from cxr_desktop.inference.probe import check_guard_accepts, plain_radiographs, probe_inputs
from cxr_desktop.inference.triage import TriagePolicy
from cxr_desktop.studies.reader import read_study
from cxr_desktop.studies.study import StudyError, StudyInfo, is_lateral

if TYPE_CHECKING:  # PyTorch is optional: the base install scores with ONNX Runtime (core.optional_torch)
    from cxr_desktop.inference.torch_backend import TorchModel

log = logging.getLogger(__name__)


@dataclass
class StudyResult:
    """The outcome for one file: scores and the urgent flag, or the reason it could not be scored."""

    path: Path
    info: StudyInfo | None = None
    # the trained findings only: an untrained head's output is not a result and is left out
    probabilities: dict[str, float] = field(default_factory=dict)
    urgent: bool = False
    error: str = ""
    # the input guard's verdict: "ok", a short reason not to flag on the score alone (core.guard), or ""
    # when the model has no guard
    quality: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


Loader = Callable[[Path], "tuple[StudyInfo | None, np.ndarray]"]  # path -> (header, decoded image)


@dataclass
class _Prepared:
    path: Path
    info: StudyInfo | None = None
    model_input: np.ndarray | None = None  # uint8 (size, size)
    error: str = ""
    doubt: str | None = None  # the pixel checks' verdict on model_input (core.pixel_checks), made in the reader


BACKENDS = ("auto", "torch", "onnx")
# Studies per model call. ONNX Runtime on the CPU: small batches keep both cores busy from the first study to
# the last (decoding overlaps every forward) and ran fastest per image: 4 gave 0.87-0.90x the single-core
# decode+resize rate end to end, 16 gave 0.77x (docs/performance.md). PyTorch and GPUs gain from larger ones.
ONNX_CPU_BATCH = 4
DEFAULT_BATCH = 16
NON_FINITE_ERROR = "model output is not finite (NaN or infinite): no score given"
# a study a model with an input guard scored but its guard could not judge: doubtful, never flagged on its score
UNCHECKED_GUARD = "input check could not run on this film"


class Engine:
    """One model on one device. ``precision`` is "fp32" or "bf16" (autocast; CPU or CUDA). ``batch_size`` None
    picks the measured default of the backend (``ONNX_CPU_BATCH`` or ``DEFAULT_BATCH``). ``backend``
    "auto" scores with ONNX Runtime on the CPU when the bundle has a verified ONNX copy, else PyTorch. Without
    PyTorch installed only ONNX Runtime on the CPU is available; anything else says which extra to install."""

    def __init__(
        self,
        bundle: LoadedBundle,
        device: str = "auto",
        batch_size: int | None = None,
        precision: str = "fp32",
        workers: int | None = None,
        operating_point: str | None = None,
        backend: str = "auto",
    ) -> None:
        self.bundle = bundle
        self.card = bundle.card
        self.spec = bundle.card.spec
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.precision = precision
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.policy = TriagePolicy.from_card(self.card, operating_point)
        self.guard = bundle.guard
        self._torch = self._torch_model(device, backend)
        self.device_type = self._torch.device.type if self._torch is not None else "cpu"
        self._probe_inputs = probe_inputs(self.spec)  # drawn anew at each load
        self._onnx = self._choose_onnx(backend)
        self._guard_maps = self._guard_reads_maps()
        self._mirror_groups = max(1, self.guard.mirror_groups) if self.guard is not None else 1
        self.batch_size = batch_size or (ONNX_CPU_BATCH if self._onnx is not None else DEFAULT_BATCH)
        self._cam_head = closed_form_head(bundle) if self._onnx is not None and self._onnx.has_cam_features else None
        self._check_probe()

    def _torch_model(self, device: str, backend: str) -> TorchModel | None:
        """The PyTorch model on its device; None on the CPU path of an install without PyTorch (the bundle was
        loaded without its model), where ONNX Runtime scores."""
        check_device_name(device)
        needs = _torch_reason(device, backend, self.precision, bool(self.card.onnx_file))
        if self.bundle.model is None and not needs:
            return None
        model = self.bundle.require_model(needs or "Scoring with PyTorch")  # says which extra, when missing
        from cxr_desktop.inference.torch_backend import TorchModel

        return TorchModel(model, self.card.architecture, device, self.precision)

    def _check_probe(self) -> None:
        """Refuse a model whose outputs are not finite (e.g. a NaN in its weights) on the probe batch, scored
        by the backend that will score the studies, or that cannot run on the inputs its card makes."""
        if self._onnx is None:
            check_onnx_input(self.bundle)  # the exported graph still says which input the weights take
        try:
            outputs, features = self._forward(self._probe_inputs)
        except Exception as exc:  # noqa: BLE001 - any backend's error: the bundle is refused with it
            raise BundleFormatError(
                f"{self.bundle.path}: the model cannot score the inputs its card describes "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        if not np.isfinite(outputs).all():
            raise BundleFormatError(
                f"{self.bundle.path}: the model gives non-finite outputs (NaN or infinite) on a probe image; "
                "its weights are damaged"
            )
        if self.guard is not None and features is not None and (plain := plain_radiographs(self.spec)):
            check_guard_accepts(self.guard, self._forward(plain)[1], self.bundle.path)

    def _choose_onnx(self, backend: str) -> OnnxScorer | None:
        if backend == "torch":
            return None
        usable = self.device_type == "cpu" and self.precision == "fp32"
        if backend == "onnx" or self._torch is None:
            if not usable:
                raise ValueError("the ONNX Runtime backend runs fp32 on the CPU only (use --device cpu)")
            if not onnxruntime_available():
                raise RuntimeError("the ONNX backend was requested but onnxruntime is not installed")
            scorer = open_verified(self.bundle, self._probe_inputs)
            if scorer is None or (self.guard is not None and not scorer.has_embedding):
                raise RuntimeError(
                    f"{self.bundle.path} has no ONNX file that gives the input guard its embedding; "
                    "renew it with `cxr-train onnx BUNDLE`"
                )
            return scorer
        if not usable or not self.card.onnx_file:
            return None
        if not onnxruntime_available():
            log.info("onnxruntime is not installed; scoring with PyTorch")
            return None
        scorer = open_verified(self.bundle, self._probe_inputs)
        if scorer is not None and self.guard is not None and not scorer.has_embedding:
            log.warning("%s predates the input guard (no embedding output); scoring with PyTorch", self.card.onnx_file)
            return None
        return scorer

    def _guard_reads_maps(self) -> bool:
        """Whether each forward pass must also give the feature map: the guard's mirror probe reads its halves."""
        if self.guard is None or not self.guard.has_mirror_probe:
            return False
        if self._onnx is not None and not self._onnx.has_cam_features:
            log.warning("%s has no feature-map output: the input guard cannot tell mirrored films", self.card.onnx_file)
            return False
        return True

    @property
    def backend(self) -> str:
        return "onnxruntime" if self._onnx is not None else "pytorch"

    @classmethod
    def from_path(cls, path: str | Path, **kwargs) -> Engine:
        return cls(load_bundle(path), **kwargs)

    @property
    def device_name(self) -> str:
        name = self._torch.device_name if self._torch is not None else "CPU"
        return f"{name} ({self.precision}, {self.backend})"

    @property
    def fingerprint_text(self) -> str:
        """e.g. "fingerprint fb9d6c2105aa", with ``core.bundle.bundle_notes`` (not the default, no guard)."""
        return "; ".join([f"fingerprint {self.card.fingerprint}", *bundle_notes(self.card)])

    @property
    def description(self) -> str:
        return f"{self.card.model_id} ({self.fingerprint_text}) on {self.device_name}"

    # -- scoring -------------------------------------------------------------------------------------

    def predict_inputs(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Raw model outputs (N, 14) for preprocessed uint8 model inputs, untrained heads included; use
        ``reported`` to turn a row into the probabilities the rest of the app may show."""
        return self._forward(inputs)[0]

    def _forward(self, inputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, 14) and what the input guard reads (``core.guard.guard_features``: the embeddings,
        with the feature map's lateral differences when its mirror probe needs them, from the same pass; None
        where the ONNX copy predates the embeddings)."""
        if not inputs:
            return np.zeros((0, len(self.card.labels)), dtype=np.float32), None
        activation = cam_activation(self.card.architecture)
        if self._onnx is not None:
            batch = normalize_array(np.stack(inputs), self.spec)
            if not self._guard_maps:
                logits, embeddings = self._onnx(batch)
                return sigmoid(logits), embeddings
            names = [OUTPUT_NAME, EMBEDDING_NAME, CAM_FEATURES_NAME]
            logits, embeddings, maps = self._onnx.session.run(names, {INPUT_NAME: batch})
            return sigmoid(logits), guard_features(embeddings, maps, activation, self._mirror_groups)
        torch_model = self._require_torch("Scoring with PyTorch")
        probabilities, embeddings, maps = torch_model.forward(inputs, self.spec, with_maps=self._guard_maps)
        return probabilities, guard_features(embeddings, maps, activation, self._mirror_groups)

    def _require_torch(self, purpose: str) -> TorchModel:
        if self._torch is None:
            require_torch(purpose)
            raise RuntimeError(f"{purpose}: this engine was started without its PyTorch model")
        return self._torch

    def reported(self, row: np.ndarray) -> dict[str, float]:
        """One output row as {finding: probability} for the findings the model was trained on."""
        trained = set(self.card.trained_findings)
        return {name: float(v) for name, v in zip(self.card.labels, row, strict=True) if name in trained}

    def _prepare(self, path: Path, load: Loader) -> _Prepared:
        try:
            info, image = load(path)
            model_input = resize_to_input(to_uint8(image), self.spec)
            return _Prepared(path, info, model_input, doubt=pixel_verdict(model_input))
        except StudyError as exc:
            return _Prepared(path, error=exc.reason)
        except Exception as exc:  # anything a reader or the preprocessing did not anticipate: this file only
            log.warning("failed to prepare %s: %s", path.name, type(exc).__name__)
            return _Prepared(path, error=f"cannot prepare image ({type(exc).__name__}: {exc})")

    def _results(self, batch: list[_Prepared]) -> list[StudyResult]:
        good = [p for p in batch if not p.error]
        try:
            probs, embeddings = self._forward([p.model_input for p in good])
        except Exception as exc:  # e.g. CUDA out of memory: the rows get the reason, the run goes on
            log.error("model failed on a batch: %s: %s", type(exc).__name__, exc)
            return [StudyResult(p.path, p.info, error=p.error or f"model failed: {exc}") for p in batch]
        verdicts = self._verdicts(embeddings, [p.doubt for p in good])
        by_path = {id(p): (row, verdict) for p, row, verdict in zip(good, probs, verdicts, strict=True)}
        return [self._result(p, *by_path.get(id(p), (None, ""))) for p in batch]

    def _verdicts(self, embeddings: np.ndarray | None, doubts: list[str | None]) -> list[str]:
        """The input check's verdict per study: the input guard's verdict, or where it has none to give, that of
        the pixel checks (``core.pixel_checks``: a box drawn over the film, a film turned at an angle; with or
        without a guard); "" (not checked) only when the model has no guard. With a guard, a study it could not
        judge (its features are not finite) gets ``UNCHECKED_GUARD``, which is never flagged urgent on the score
        alone, and its batch mates are judged as usual."""
        verdicts = self._guard_verdicts(embeddings, len(doubts))
        return [
            (doubt or verdict) if verdict in (OK, "") else verdict
            for verdict, doubt in zip(verdicts, doubts, strict=True)
        ]

    def _guard_verdicts(self, embeddings: np.ndarray | None, count: int) -> list[str]:
        if self.guard is None:
            return [""] * count
        if embeddings is None:
            return [UNCHECKED_GUARD] * count
        verdicts = [UNCHECKED_GUARD] * count
        finite = np.isfinite(embeddings.reshape(count, -1)).all(axis=1)
        if finite.any():
            for index, verdict in zip(np.flatnonzero(finite), self.guard.verdicts(embeddings[finite]), strict=True):
                verdicts[index] = verdict
        return verdicts

    def _result(self, prepared: _Prepared, output: np.ndarray | None, verdict: str) -> StudyResult:
        """One file's result: its error, a refusal of non-finite model outputs, or scores, the guard's verdict
        and the flag (never urgent for a view outside the model's scope, e.g. a lateral film, or a film the
        guard doubts: those are shown with their reason and left to the reader)."""
        if prepared.error or output is None:
            return StudyResult(prepared.path, prepared.info, error=prepared.error or "no model output")
        if not np.isfinite(output).all():
            log.error("model output for %s is not finite", prepared.path.name)
            return StudyResult(prepared.path, prepared.info, error=NON_FINITE_ERROR)
        scores = self.reported(output)
        if prepared.info is not None and is_lateral(prepared.info.view_position):
            verdict = LATERAL
        flaggable = verdict == OK or (verdict == "" and self.guard is None)
        urgent = flaggable and self.policy.is_urgent(scores)
        return StudyResult(prepared.path, prepared.info, scores, urgent, quality=verdict)

    def triage(
        self, paths: Iterable[Path], metadata: Mapping[str, dict[str, str]] | None = None
    ) -> Iterator[StudyResult]:
        """Read, decode and score every file, in input order (one ``read_study`` per file). A worklist goes
        through a ``TriageSession`` instead, which reads headers first and keeps the decoded images."""
        meta = metadata or {}

        def load(path: Path) -> tuple[StudyInfo, np.ndarray]:
            study = read_study(path, meta.get(path.name))
            return study.info, study.image

        for batch in self.score_batches(paths, load):
            yield from batch

    def score_batches(self, paths: Iterable[Path], load: Loader) -> Iterator[list[StudyResult]]:
        """Score studies in input order, one list per model batch. ``load(path)`` gives the study's header and
        decoded image (or raises ``StudyError``); it runs in a thread pool ahead of the model."""
        pending: deque = deque()
        todo = iter(paths)
        ahead = self.batch_size * 3  # decoded inputs kept in flight; bounds memory on huge folders
        with ThreadPoolExecutor(self.workers, thread_name_prefix="cxr-read") as pool:
            while True:
                for path in itertools.islice(todo, max(0, ahead - len(pending))):
                    pending.append(pool.submit(self._prepare, Path(path), load))
                if not pending:
                    break
                yield self._results([pending.popleft().result() for _ in range(min(self.batch_size, len(pending)))])

    # -- explanation ---------------------------------------------------------------------------------

    def warm_up_heatmap(self) -> None:
        """One Grad-CAM on a noise image (warms the backward pass, or ONNX Runtime's feature-map output), so
        that the first heatmap a user asks for comes without the first call's delay."""
        size = self.spec.input_size
        self.heatmap(np.random.default_rng(0).integers(0, 255, (size, size), dtype=np.uint8))

    @property
    def heatmap_method(self) -> str:
        """How heatmaps are made: the closed form from the ONNX copy (numpy), or gradients in PyTorch."""
        return "closed form (ONNX Runtime + numpy)" if self._cam_head is not None else "PyTorch gradients"

    def heatmap(self, image: np.ndarray, finding: str | None = None) -> np.ndarray:
        """Grad-CAM for ``finding`` (the urgent one by default), in [0, 1], over the original image: in closed
        form from the ONNX copy's feature map where the card records one (``core.cam``), else by PyTorch."""
        index = finding_index(finding or self.card.urgent_finding)
        gray = to_uint8(image)
        content = border_box(gray, self.spec)
        model_input = resize_to_input(gray, self.spec, content)
        if self._onnx is not None and self._cam_head is not None:
            features = self._onnx.cam_features(normalize_array(model_input, self.spec))
            activation = self.card.closed_form_cam["activation"]
            size = self.spec.input_size
            cam = scaled_maps(closed_form_cams(features, self._cam_head[index], activation), size, size)[0]
        else:
            cam = self._require_torch("Grad-CAM for this model (its card records no closed form)").grad_cam(
                model_input, self.spec, index
            )
        return map_to_image(cam, image.shape, self.spec, content)


def _torch_reason(device: str, backend: str, precision: str, has_onnx: bool) -> str:
    """Why this engine needs PyTorch ("" when ONNX Runtime on the CPU will do)."""
    if backend == "torch":
        return "The PyTorch backend (--backend torch)"
    if device not in ("auto", "cpu"):
        return f"Scoring on {device} (a GPU)"
    if precision != "fp32":
        return f"{precision} scoring"
    if not has_onnx:
        return "This model (it has no ONNX copy to score with ONNX Runtime)"
    return ""
