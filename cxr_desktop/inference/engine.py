"""The engine: owns one model on one device, reads and preprocesses studies in a thread pool that overlaps
the model, batches, and returns plain result objects. The GUI worker and ``cxr-triage`` share it."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cxr_desktop.core.architectures import cam_target_layer, classifier_head
from cxr_desktop.core.bundle import BundleFormatError, LoadedBundle, load_bundle
from cxr_desktop.core.device import resolve_device
from cxr_desktop.core.explain import grad_cam, map_to_image
from cxr_desktop.core.guard import LATERAL, OK
from cxr_desktop.core.labels import finding_index
from cxr_desktop.core.preprocess import normalize_input, resize_to_input, to_uint8
from cxr_desktop.inference.onnx_scorer import OnnxScorer, onnxruntime_available, open_verified
from cxr_desktop.inference.probe import probe_inputs
from cxr_desktop.inference.triage import TriagePolicy
from cxr_desktop.studies.reader import read_study
from cxr_desktop.studies.study import StudyError, StudyInfo, is_lateral

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


BACKENDS = ("auto", "torch", "onnx")
NON_FINITE_ERROR = "model output is not finite (NaN or infinite): no score given"


class Engine:
    """One model on one device. ``precision`` is "fp32" or "bf16" (autocast; CPU or CUDA). ``backend``
    "auto" scores with ONNX Runtime on the CPU when the bundle has a verified ONNX copy, else PyTorch."""

    def __init__(
        self,
        bundle: LoadedBundle,
        device: str = "auto",
        batch_size: int = 16,
        precision: str = "fp32",
        workers: int | None = None,
        operating_point: str | None = None,
        backend: str = "auto",
    ) -> None:
        self.bundle = bundle
        self.card = bundle.card
        self.spec = bundle.card.spec
        self.device = resolve_device(device)
        self.batch_size = batch_size
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        self.precision = precision
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.policy = TriagePolicy.from_card(self.card, operating_point)
        self.model = bundle.model.to(self.device).eval()
        if self.device.type == "cpu" or precision == "bf16":
            self.model = self.model.to(memory_format=torch.channels_last)
        self._cam_layer = cam_target_layer(self.card.architecture, self.model)
        self._head = classifier_head(self.model)
        self.guard = bundle.guard
        self._model_lock = threading.Lock()  # scoring and Grad-CAM may come from different threads
        self._probe_inputs = probe_inputs(self.spec)  # drawn anew at each load
        self._onnx = self._choose_onnx(backend)
        self._check_probe()

    def _check_probe(self) -> None:
        """Refuse a model whose outputs are not finite (e.g. a NaN in its weights) on the probe batch, scored
        by the backend that will score the studies."""
        outputs = self.predict_inputs(self._probe_inputs)
        if not np.isfinite(outputs).all():
            raise BundleFormatError(
                f"{self.bundle.path}: the model gives non-finite outputs (NaN or infinite) on a probe image; "
                "its weights are damaged"
            )

    def _choose_onnx(self, backend: str) -> OnnxScorer | None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "torch":
            return None
        usable = self.device.type == "cpu" and self.precision == "fp32"
        if backend == "onnx":
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

    @property
    def backend(self) -> str:
        return "onnxruntime" if self._onnx is not None else "pytorch"

    @classmethod
    def from_path(cls, path: str | Path, **kwargs) -> Engine:
        return cls(load_bundle(path), **kwargs)

    @property
    def device_name(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        return f"{name} ({self.precision}, {self.backend})"

    @property
    def description(self) -> str:
        return f"{self.card.model_id} (fingerprint {self.card.fingerprint}) on {self.device_name}"

    # -- scoring -------------------------------------------------------------------------------------

    def _to_batch(self, inputs: list[np.ndarray], channels_last: bool = True) -> torch.Tensor:
        stacked = torch.from_numpy(np.stack(inputs)).to(self.device, non_blocking=True)
        batch = normalize_input(stacked, self.spec)
        return batch.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def predict_inputs(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Raw model outputs (N, 14) for preprocessed uint8 model inputs, untrained heads included; use
        ``reported`` to turn a row into the probabilities the rest of the app may show."""
        return self._forward(inputs)[0]

    def _forward(self, inputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, 14) and the embeddings the input guard reads (None where the ONNX copy predates
        them)."""
        if not inputs:
            return np.zeros((0, len(self.card.labels)), dtype=np.float32), None
        batch = self._to_batch(inputs, channels_last=self._onnx is None)  # ONNX Runtime takes NCHW as is
        if self._onnx is not None:
            logits, embeddings = self._onnx(batch.numpy())
            return torch.sigmoid(torch.from_numpy(logits)).numpy(), embeddings
        captured: list[torch.Tensor] = []
        with self._model_lock, torch.inference_mode():
            handle = self._head.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
            try:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    logits = self.model(batch)
            finally:
                handle.remove()
            return torch.sigmoid(logits.float()).cpu().numpy(), captured[0].float().cpu().numpy()

    def reported(self, row: np.ndarray) -> dict[str, float]:
        """One output row as {finding: probability} for the findings the model was trained on."""
        trained = set(self.card.trained_findings)
        return {name: float(v) for name, v in zip(self.card.labels, row, strict=True) if name in trained}

    def _prepare(self, path: Path, load: Loader) -> _Prepared:
        try:
            info, image = load(path)
            return _Prepared(path, info, resize_to_input(to_uint8(image), self.spec))
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
        verdicts = self._verdicts(embeddings, len(good))
        by_path = {id(p): (row, verdict) for p, row, verdict in zip(good, probs, verdicts, strict=True)}
        return [self._result(p, *by_path.get(id(p), (None, ""))) for p in batch]

    def _verdicts(self, embeddings: np.ndarray | None, count: int) -> list[str]:
        """The input guard's verdict per study; "" (not checked) when the model has no guard."""
        if self.guard is None or embeddings is None:
            return [""] * count
        if not np.isfinite(embeddings).all():
            return [""] * count  # the rows become non-finite errors in ``_result``
        return self.guard.verdicts(embeddings)

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
        urgent = verdict in (OK, "") and self.policy.is_urgent(scores)
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
        """One Grad-CAM on a noise image: imports pytorch-grad-cam (seconds: it pulls in scikit-learn) and
        warms the backward pass, so that the first heatmap a user asks for comes in ~0.2 s, not ~5 s."""
        size = self.spec.input_size
        self.heatmap(np.random.default_rng(0).integers(0, 255, (size, size), dtype=np.uint8))

    def heatmap(self, image: np.ndarray, finding: str | None = None) -> np.ndarray:
        """Grad-CAM for ``finding`` (the urgent one by default), in [0, 1], over the original image."""
        index = finding_index(finding or self.card.urgent_finding)
        batch = self._to_batch([resize_to_input(to_uint8(image), self.spec)])
        with self._model_lock:
            cam = grad_cam(self.model, self._cam_layer, batch, index)[0]
        return map_to_image(cam, image.shape, self.spec)
