"""What a candidate architecture would cost the triage, before any training: forward CPU time against decode.

Issue 21 adopts a bigger network only if the triage session stays at >= 0.85x the single-core decode+resize rate.
On two cores every study costs its decode+resize (d seconds of CPU) plus its forward pass (f seconds of CPU), so
even with perfect overlap the session cannot beat 2 / (d + f) studies/s, that is 2w / (d + f) times the
one-file-after-the-other decode rate 1/w (w: its wall time per study, w <= d). This script measures w, d and f on
this machine for each architecture at its native size
(an untrained network: the cost of a forward pass does not depend on the weights), exported to ONNX exactly as
``cxr-train export`` does and scored with the app's ONNX Runtime scorer on one thread in batches of 4 (the app's
CPU batch), and prints that ceiling. The session measured by ``triage_throughput.py`` is below it.

    .venv/bin/python benchmarks/architecture_cost.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from study_folder import SHARED, shared_sources  # benchmarks/study_folder.py

from cxr_desktop.core.architectures import create
from cxr_desktop.core.card import ModelCard
from cxr_desktop.core.onnx_model import export_onnx
from cxr_desktop.core.onnx_runtime import OnnxScorer
from cxr_desktop.core.preprocess import PreprocessSpec, resize_to_input, to_uint8
from cxr_desktop.inference.engine import ONNX_CPU_BATCH
from cxr_desktop.studies.reader import read_header, read_pixels

CANDIDATES = [("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260)]
RATIO_FLOOR = 0.85  # issue 21: the triage ratio must stay at or above this


def decode_seconds(paths: list[Path], size: int) -> tuple[float, float]:
    """Wall and CPU seconds per study of the product's decode and resize to ``size``, one file after the other
    (headers read beforehand). The wall time is the yardstick's (``triage_throughput.py``); the CPU time is
    larger where OpenCV's resize uses both cores."""
    spec = PreprocessSpec(input_size=size)
    infos = [read_header(path) for path in paths]
    wall, cpu = time.perf_counter(), time.process_time()
    for path, info in zip(paths, infos, strict=True):
        resize_to_input(to_uint8(read_pixels(path, info)), spec)
    return (time.perf_counter() - wall) / len(paths), (time.process_time() - cpu) / len(paths)


def forward_seconds(architecture: str, size: int, batches: int) -> float:
    """CPU seconds per image (process time) of the exported ONNX graph, one thread, batches of ONNX_CPU_BATCH."""
    model = create(architecture, num_outputs=1, init="scratch").eval()
    card = ModelCard(
        model_id=f"cost-{architecture}",
        architecture=architecture,
        labels=["Cardiomegaly"],
        preprocessing=PreprocessSpec(input_size=size).to_dict(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        scorer = OnnxScorer(export_onnx(tmp, model, card), threads=1)
        batch = np.random.default_rng(0).standard_normal((ONNX_CPU_BATCH, 3, size, size)).astype(np.float32)
        scorer(batch)  # warm-up
        started = time.process_time()
        for _ in range(batches):
            scorer(batch)
        return (time.process_time() - started) / (batches * ONNX_CPU_BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40, help="batches timed per architecture")
    parser.add_argument("--shared", type=Path, default=SHARED)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = shared_sources(args.shared, dicoms=False)
    header = ("architecture", "size", "decode wall ms", "decode CPU ms", "forward CPU ms", "ceiling")
    print(f"{header[0]:20s} {header[1]:>4s} {header[2]:>14s} {header[3]:>13s} {header[4]:>14s} {header[5]:>8s}  0.85x?")
    for architecture, size in CANDIDATES:
        wall, decode = decode_seconds(images * 4, size)
        forward = forward_seconds(architecture, size, args.batches)
        ceiling = 2 * wall / (decode + forward)
        verdict = "possible" if ceiling >= RATIO_FLOOR else "no: even perfect overlap stays below it"
        print(
            f"{architecture:20s} {size:4d} {wall * 1e3:14.1f} {decode * 1e3:13.1f} {forward * 1e3:14.1f} "
            f"{ceiling:7.2f}x  {verdict}"
        )


if __name__ == "__main__":
    main()
