"""End-to-end trainer runs on a tiny synthetic set: train, kill -9 and resume, DDP, evaluate, export."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from trainer_helpers import make_folder_dataset, write_config

from cxr_desktop.core.bundle import load_bundle
from cxr_desktop.inference.engine import Engine
from trainer.cli import main as train_main

CLI = [sys.executable, "-m", "trainer.cli"]


def history(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    root = make_folder_dataset(tmp / "data")
    return tmp, root


def test_train_evaluate_export(tiny, tmp_path):
    tmp, root = tiny
    config = write_config(tmp_path, root)
    assert train_main(["train", "-c", str(config), "--set", "name=full"]) == 0
    run_dir = tmp_path / "runs" / "full"
    for name in ("config.yaml", "split.csv", "train.log", "metrics.jsonl", "checkpoint.pt", "best.safetensors"):
        assert (run_dir / name).exists(), name
    assert len(history(run_dir)) == 3
    assert train_main(["evaluate", "--run", str(run_dir), "--split", "test", "--out", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert list(metrics["findings"]) == ["Cardiomegaly"] and metrics["findings"]["Cardiomegaly"]["n"] == 12
    assert (tmp_path / "ev" / "roc.png").stat().st_size > 1000
    bundle_dir = tmp_path / "bundle"
    assert train_main(["export", str(run_dir), "--out", str(bundle_dir), "--target-sensitivity", "0.9"]) == 0
    bundle = load_bundle(bundle_dir)
    points = bundle.card.operating_points
    assert set(points) == {"sensitivity_0.90", "sensitivity_0.95", "youden"}
    assert bundle.card.default_operating_point == "sensitivity_0.90"
    assert "test" in bundle.card.metrics and bundle.card.provenance["data"]["counts"]["train"] == 24
    # the bundle rebuilds its own test split from the config in its card
    assert (
        train_main(
            [
                "evaluate",
                "--model",
                str(bundle_dir),
                "--split",
                "test",
                "--out",
                str(tmp_path / "ev2"),
                "--record-as",
                "test-again",
            ]
        )
        == 0
    )
    assert "test-again" in load_bundle(bundle_dir).card.metrics["checks"]
    # the export wrote the ONNX copy, and recording a check kept it valid
    assert Engine(load_bundle(bundle_dir), device="cpu", backend="onnx").backend == "onnxruntime"
    again = json.loads((tmp_path / "ev2" / "metrics.json").read_text())
    assert again["findings"]["Cardiomegaly"]["auroc"] == pytest.approx(metrics["findings"]["Cardiomegaly"]["auroc"])


@pytest.mark.slow
def test_resume_after_kill_matches_an_uninterrupted_run(tiny, tmp_path):
    """With loader workers (their augmentation must follow the epoch), warm-up and a weight average."""
    tmp, root = tiny
    config = write_config(tmp_path, root, epochs="4", workers="2", warmup_epochs="0.5", ema_decay="0.9")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run(
        [*CLI, "train", "-c", str(config), "--set", "name=straight"], check=True, env=env, capture_output=True
    )
    proc = subprocess.Popen(
        [*CLI, "train", "-c", str(config), "--set", "name=killed"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = tmp_path / "runs" / "killed"
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "metrics.jsonl").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(history(killed))
    assert done_before < 4, "the run finished before it could be killed"
    subprocess.run([*CLI, "train", "--resume", str(killed)], check=True, env=env, capture_output=True)
    straight, resumed = history(tmp_path / "runs" / "straight"), history(killed)
    assert len(resumed) == 4
    for a, b in zip(straight, resumed, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_mean_auroc"] == pytest.approx(b["val_mean_auroc"], abs=1e-6)


def test_distributed_training_with_gloo_on_two_processes(tiny, tmp_path):
    tmp, root = tiny
    config = write_config(tmp_path, root, epochs="1")
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29533",
            "-m",
            "trainer.cli",
            "train",
            "-c",
            str(config),
            "--set",
            "name=ddp",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = tmp_path / "runs" / "ddp"
    assert len(history(run_dir)) == 1
    assert (run_dir / "best.safetensors").exists()
