"""Triage throughput, end to end, on a folder of full-size studies; every figure measured in this one run.

Builds a folder of --count studies from copies of the shared 1024 px NIH PNGs and the chest DICOMs, then
runs it through the `cxr-triage` engine (list files -> decode in a thread pool -> preprocess -> batched
model) under each lever setting, and through a naive loop (PIL/pydicom open -> float32 -> batch of 1 ->
fp32 PyTorch model, no overlap) on the same files with the same model. Prints studies/s, time to the first
urgent flag, peak memory and the ratios. With --bf16-check it also compares bf16 autocast with fp32 on
the real NIH sample (the issue's rule: keep bf16 only if every probability is within 0.02 and no urgent
flag changes).

    .venv/bin/python benchmarks/triage_throughput.py --count 200
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from study_folder import SHARED, build_folder  # benchmarks/study_folder.py

from cxr_desktop.core.bundle import load_bundle
from cxr_desktop.core.preprocess import preprocess
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.inference.engine import Engine
from cxr_desktop.studies.scan import iter_study_files


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine(engine: Engine, folder: Path) -> dict:
    started = time.perf_counter()
    first_urgent = None
    results = []
    for result in engine.triage(list(iter_study_files([folder]))):
        results.append(result)
        if result.urgent and first_urgent is None:
            first_urgent = time.perf_counter() - started
    seconds = time.perf_counter() - started
    return {"rate": len(results) / seconds, "seconds": seconds, "first_urgent": first_urgent, "results": results}


def naive_read(path: Path) -> np.ndarray:
    if path.suffix == ".dcm":
        import pydicom

        dataset = pydicom.dcmread(path, force=True)
        if "TransferSyntaxUID" not in dataset.file_meta:  # a file without meta: the DICOM default syntax
            dataset.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        return dataset.pixel_array.astype(np.float32)
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def run_naive(model: torch.nn.Module, spec, paths: list[Path]) -> float:
    """One file at a time: read, float32, preprocess, batch of 1, fp32 model, nothing overlapped."""
    started = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            image = naive_read(path)
            image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
            torch.sigmoid(model(preprocess(image, spec).unsqueeze(0)))
    return len(paths) / (time.perf_counter() - started)


def model_only(model_dir: Path, batches: int = 6, batch_size: int = 16) -> dict[str, float]:
    """Forward passes on an in-memory batch: the ceiling the end-to-end figures are measured against."""
    from cxr_desktop.inference.onnx_scorer import open_verified

    bundle = load_bundle(model_dir)
    size = bundle.card.spec.input_size
    x = torch.randn(batch_size, 3, size, size)

    def rate(forward, batch) -> float:
        forward(batch)
        started = time.perf_counter()
        for _ in range(batches):
            forward(batch)
        return batches * batch_size / (time.perf_counter() - started)

    model = bundle.model.eval()
    with torch.inference_mode():
        rates = {"pytorch fp32, contiguous": rate(model, x)}
        model = model.to(memory_format=torch.channels_last)
        rates["pytorch fp32, channels_last"] = rate(model, x.contiguous(memory_format=torch.channels_last))
    scorer = open_verified(bundle)
    if scorer is not None:
        rates["onnxruntime fp32"] = rate(scorer, x.numpy())
    return rates


def bf16_check(model_dir: Path, images: list[Path]) -> str:
    fp32 = Engine(load_bundle(model_dir), device="cpu", backend="torch")
    bf16 = Engine(load_bundle(model_dir), device="cpu", precision="bf16")
    t = time.perf_counter()
    a = list(fp32.triage(images))
    fp32_rate = len(a) / (time.perf_counter() - t)
    t = time.perf_counter()
    b = list(bf16.triage(images))
    bf16_rate = len(b) / (time.perf_counter() - t)
    pairs = list(zip(a, b, strict=True))
    worst = max(abs(x.probabilities[k] - y.probabilities[k]) for x, y in pairs for k in x.probabilities)
    flips = sum(x.urgent != y.urgent for x, y in pairs)
    keep = worst <= 0.02 and flips == 0
    return (
        f"bf16 autocast vs fp32 (PyTorch) on {len(images)} real NIH images: largest probability difference "
        f"{worst:.4f}, urgent flags changed {flips}; {bf16_rate:.1f} vs {fp32_rate:.1f} studies/s "
        f"-> {'bf16 passes the rule' if keep else 'keep fp32'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--naive-count", type=int, default=60, help="files timed in the naive loop")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--bf16-check", type=int, default=0, metavar="N", help="compare bf16 on N NIH images")
    args = parser.parse_args()
    model_dir = args.model or default_model_dir()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {model_dir.name}", flush=True)
    for name, rate in model_only(model_dir).items():
        print(f"{'model only, batch 16, ' + name:58s} {rate:6.1f} images/s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        paths = build_folder(Path(tmp), args.count, args.shared)
        print(f"{len(paths)} studies ({sum(p.suffix == '.dcm' for p in paths)} DICOM), copies of the shared files")
        t = time.perf_counter()
        default = Engine(load_bundle(model_dir), device="cpu")
        print(f"engine load (with ONNX agreement check): {time.perf_counter() - t:.2f} s, {default.description}")
        run_engine(default, Path(tmp))  # warm-up: file cache, kernels, thread pools

        def fresh(**options) -> Engine:
            return Engine(load_bundle(model_dir), device="cpu", **options)

        settings = {
            f"engine default ({default.backend}, batch {default.batch_size}, {default.workers} readers)": default,
            "engine pytorch fp32 channels_last, batch 16": Engine(
                load_bundle(model_dir), device="cpu", backend="torch"
            ),
            "engine onnxruntime, batch 8": fresh(batch_size=8),
            "engine onnxruntime, batch 32": fresh(batch_size=32),
            "engine onnxruntime, 1 reader thread": fresh(workers=1),
        }
        measured = {}
        for name, engine in settings.items():
            measured[name] = run_engine(engine, Path(tmp))
            m = measured[name]
            print(
                f"{name:58s} {m['rate']:6.1f} studies/s  first urgent {m['first_urgent'] or float('nan'):.2f} s  "
                f"({sum(r.urgent for r in m['results'])} urgent, {sum(not r.ok for r in m['results'])} errors)",
                flush=True,
            )
        peak = peak_rss_mb()
        bundle = load_bundle(model_dir)
        naive_paths = paths[: args.naive_count]
        naive_rate = run_naive(bundle.model.eval(), bundle.card.spec, naive_paths)
        print(f"{'naive loop (PIL/pydicom, float32, batch 1, fp32 model)':58s} {naive_rate:6.1f} studies/s "
              f"on {len(naive_paths)} files")  # fmt: skip
    best = measured[next(iter(settings))]
    print(f"peak memory (RSS) during the engine runs: {peak:.0f} MB")
    print(f"default engine / naive loop: {best['rate'] / naive_rate:.2f}x")
    torch_rate = measured["engine pytorch fp32 channels_last, batch 16"]["rate"]
    print(f"default engine / pytorch engine: {best['rate'] / torch_rate:.2f}x")
    if args.bf16_check:
        nih = sorted((args.shared / "nih14-sample" / "images").glob("*.png"))[: args.bf16_check]
        print(bf16_check(model_dir, nih))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
