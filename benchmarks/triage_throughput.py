"""Triage throughput, end to end, on a folder of full-size studies; every figure measured in this one run.

Builds a folder of --count copies of the shared 1024 px NIH PNGs (--with-dicoms adds the chest DICOMs) and
measures, on the same files in the same run:

- the single-core decode+resize rate: the product's decode (``read_pixels``) and resize to the model input,
  one file after the other in one thread: the yardstick of issue 14 (the session should reach 1.0x it);
- the naive loop: PIL/pydicom open -> float32 -> preprocess -> batch of 1 -> fp32 PyTorch, nothing overlapped;
- the triage session (what `cxr-triage` and the app run: scan, one header read, one decode into the cache,
  batched scoring in the engine's pipeline, apply and order), and the engine's own ``triage`` loop;
- the engine under other lever settings (backend, batch size, reader threads).

It prints studies/s and the ratios. With --bf16-check it also compares bf16 autocast with fp32 on the real
NIH sample (keep bf16 only if every probability is within 0.02 and no urgent flag changes).

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
from study_folder import SHARED, build_folder, shared_sources  # benchmarks/study_folder.py

from cxr_desktop.core.bundle import load_bundle
from cxr_desktop.core.preprocess import preprocess, resize_to_input, to_uint8
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.inference.engine import Engine
from cxr_desktop.studies.reader import read_header, read_pixels
from cxr_desktop.studies.scan import iter_study_files
from cxr_desktop.worklist.session import TriageSession


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


def run_session(engine: Engine, folder: Path) -> dict:
    """A fresh session (empty image cache) through all five hops, as `cxr-triage` runs it."""
    started = time.perf_counter()
    rows = TriageSession(engine).run([folder])
    seconds = time.perf_counter() - started
    return {"rate": len(rows) / seconds, "seconds": seconds, "rows": rows}


def decode_resize_rate(paths: list[Path], spec) -> float:
    """One core, one file after the other: the product's decode and resize to the model input, nothing else
    (headers read beforehand, outside the timing)."""
    infos = [read_header(path) for path in paths]
    started = time.perf_counter()
    for path, info in zip(paths, infos, strict=True):
        resize_to_input(to_uint8(read_pixels(path, info)), spec)
    return len(paths) / (time.perf_counter() - started)


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
    parser.add_argument("--with-dicoms", action="store_true", help="mix in copies of the chest DICOMs")
    parser.add_argument("--levers", action="store_true", help="also time the engine under other settings")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--bf16-check", type=int, default=0, metavar="N", help="compare bf16 on N NIH images")
    args = parser.parse_args()
    shared_sources(args.shared, args.with_dicoms)  # before any timing: says what is missing, if anything
    model_dir = args.model or default_model_dir()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {model_dir.name}", flush=True)
    for name, rate in model_only(model_dir).items():
        print(f"{'model only, batch 16, ' + name:58s} {rate:6.1f} images/s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        paths = build_folder(Path(tmp), args.count, args.shared, dicoms=args.with_dicoms)
        print(f"{len(paths)} studies ({sum(p.suffix == '.dcm' for p in paths)} DICOM), copies of the shared files")
        default = Engine(load_bundle(model_dir), device="cpu")
        run_session(default, Path(tmp))  # warm-up: file cache, kernels, thread pools
        single = decode_resize_rate(paths, default.spec)
        print(f"{'single-core decode+resize (read_pixels + resize_to_input)':58s} {single:6.1f} studies/s", flush=True)
        session = run_session(default, Path(tmp))
        name = f"triage session ({default.backend}, batch {default.batch_size}, {default.workers} reader threads)"
        print(f"{name:58s} {session['rate']:6.1f} studies/s", flush=True)
        measured = {"engine.triage, same engine": run_engine(default, Path(tmp))}
        if args.levers:
            measured |= {
                "engine pytorch fp32 channels_last, batch 16": run_engine(
                    Engine(load_bundle(model_dir), device="cpu", backend="torch"), Path(tmp)
                ),
                "engine onnxruntime, batch 16": run_engine(
                    Engine(load_bundle(model_dir), device="cpu", batch_size=16), Path(tmp)
                ),
                "engine onnxruntime, 1 reader thread": run_engine(
                    Engine(load_bundle(model_dir), device="cpu", workers=1), Path(tmp)
                ),
            }
        for name, m in measured.items():
            print(f"{name:58s} {m['rate']:6.1f} studies/s  first urgent {m['first_urgent'] or float('nan'):.2f} s")
        peak = peak_rss_mb()
        bundle = load_bundle(model_dir)
        naive_paths = paths[: args.naive_count]
        naive_rate = run_naive(bundle.model.eval(), bundle.card.spec, naive_paths)
        print(f"{'naive loop (PIL/pydicom, float32, batch 1, fp32 model)':58s} {naive_rate:6.1f} studies/s "
              f"on {len(naive_paths)} files")  # fmt: skip
    print(f"peak memory (RSS): {peak:.0f} MB")
    print(f"session / single-core decode+resize: {session['rate'] / single:.2f}x (goal >= 1.0x)")
    print(f"session / naive loop: {session['rate'] / naive_rate:.2f}x (goal >= 5x)")
    if args.bf16_check:
        nih = sorted((args.shared / "nih14-sample" / "images").glob("*.png"))[: args.bf16_check]
        print(bf16_check(model_dir, nih))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
