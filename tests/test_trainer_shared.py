"""The trainer's shared pieces, each tested once: the run evaluation that export, evaluate and experiment
start from, the one weight loader, and the one ``--set`` parser."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from trainer_helpers import TINY_CONFIG, make_folder_dataset, write_config

from cxr_desktop.core import architectures
from cxr_desktop.core.bundle import BundleFormatError, load_bundle, model_from_weights
from cxr_desktop.core.labels import FINDINGS
from trainer import run_evaluation
from trainer.cli import main as train_main
from trainer.config import ConfigError, TrainConfig, load_config, parse_settings
from trainer.evaluate import thresholds_on
from trainer.experiment import evaluate_run
from trainer.export import export_run
from trainer.fit import BEST, build_model, save_weights
from trainer.grid import GridRun
from trainer.run import build_splits
from trainer.run_evaluation import RunEvaluation


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as training leaves it, without the training: config, split, seeded weights, history."""
    tmp = tmp_path_factory.mktemp("shared")
    config = load_config(write_config(tmp, make_folder_dataset(tmp / "data", per_class=8)))
    folder = tmp / "runs" / "tiny"
    folder.mkdir(parents=True)
    config.save(folder / "config.yaml")
    splits = build_splits(config)
    splits.save_csv(folder / "split.csv")
    torch.manual_seed(0)
    save_weights(architectures.create(config.architecture, len(FINDINGS), init="scratch"), folder / BEST)
    history = [{"epoch": e, "train_seconds": 1.0} for e in (1, 2)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    counts = {name: len(table) for name, table in splits.items()}
    (folder / "data.json").write_text(json.dumps({"code_version": "test", "counts": counts}))
    return folder


@pytest.fixture
def scorings(monkeypatch):
    """The tables the run evaluation scores, in order."""
    scored = []
    original = run_evaluation.predict_table

    def counting(model, table, *args, **kwargs):
        scored.append(len(table))
        return original(model, table, *args, **kwargs)

    monkeypatch.setattr(run_evaluation, "predict_table", counting)
    return scored


def test_a_run_evaluation_scores_each_split_once(run_dir, scorings):
    run = RunEvaluation.open(run_dir, device="cpu")
    assert (len(run.splits.train), len(run.splits.val), len(run.splits.test)) == (16, 8, 8)
    assert run.trained_findings == ["Cardiomegaly"] and run.urgent_finding == "Cardiomegaly"
    val = run.probabilities("val")
    assert val.shape == (8, len(FINDINGS)) and np.all((val >= 0) & (val <= 1))
    assert run.probabilities("val") is val
    thresholds = run.thresholds(0.9)
    assert thresholds == thresholds_on(run.splits.val.labels, val, 0.9) and list(thresholds) == ["Cardiomegaly"]
    run.thresholds(0.95)
    assert scorings == [8]  # thresholds at any sensitivity come from the one scoring of the validation split
    assert [h["epoch"] for h in run.history()] == [1, 2] and run.data_info()["code_version"] == "test"


def test_export_evaluate_and_experiment_take_the_same_thresholds(run_dir, tmp_path, scorings):
    expected = RunEvaluation.open(run_dir, device="cpu").thresholds()["Cardiomegaly"]
    card = export_run(run_dir, tmp_path / "bundle", device="cpu", onnx=False)
    assert card.operating_points["sensitivity_0.90"]["Cardiomegaly"] == expected
    assert card.provenance["epochs_trained"] == 2 and card.metrics["test"]["findings"]["Cardiomegaly"]["n"] == 8
    scorings.clear()
    out = tmp_path / "eval"
    assert train_main(["evaluate", "--run", str(run_dir), "--split", "val", "--out", str(out), "--device", "cpu"]) == 0
    assert scorings == [8]  # the validation split chose the thresholds and is the split evaluated: scored once
    assert json.loads((out / "metrics.json").read_text())["findings"]["Cardiomegaly"]["threshold"] == expected
    grid_run = GridRun("tiny", {}, run_dir)
    try:
        assert evaluate_run(grid_run, "Cardiomegaly")["threshold"] == expected
    finally:
        for name in ("test_result.json", "test_probs.npy", "test_labels.npy", "gallery.npz"):
            (run_dir / name).unlink(missing_ok=True)


def test_one_weight_loader_for_bundles_runs_and_checkpoint_init(run_dir, tmp_path):
    saved = model_from_weights("resnet18", run_dir / BEST, len(FINDINGS)).state_dict()
    config = load_config(run_dir / "config.yaml")
    initialised = build_model(TrainConfig(**{**config.to_dict(), "init": f"checkpoint:{run_dir}"}))
    assert all(torch.equal(saved[k], v) for k, v in initialised.state_dict().items())
    card = export_run(run_dir, tmp_path / "bundle", device="cpu", onnx=False)
    bundle = load_bundle(tmp_path / "bundle")
    assert card.architecture == "resnet18" and not bundle.model.training
    assert all(torch.equal(saved[k], v) for k, v in bundle.model.state_dict().items())
    with pytest.raises(BundleFormatError, match="do not fit architecture 'efficientnet_lite0'"):
        model_from_weights("efficientnet_lite0", run_dir / BEST, len(FINDINGS))


def test_the_set_parser_reads_yaml_values_and_dotted_keys():
    pairs = parse_settings(["epochs=3", " preprocessing.input_size = 128", "augment=[blur, rotate:5]", "lr=3e-4"])
    assert pairs == [
        ("epochs", 3),
        ("preprocessing.input_size", 128),
        ("augment", ["blur", "rotate:5"]),
        ("lr", "3e-4"),
    ]
    assert parse_settings(["name=a: b: c"]) == [("name", "a: b: c")]  # not YAML: kept as text


def test_the_set_parser_names_every_bad_item_with_a_suggestion():
    with pytest.raises(ConfigError) as caught:
        parse_settings(["learning_rate=0.01", "epochs", "preprocesing.input_size=64", "=3"])
    problems = caught.value.problems
    assert len(problems) == 4
    assert "unknown key 'learning_rate'; did you mean 'lr'?" in problems[0]
    assert "'epochs' must look like key=value" in problems[1]
    assert "unknown key 'preprocesing.input_size'; did you mean 'preprocessing'?" in problems[2]


def test_an_experiments_set_is_checked_before_anything_is_written(tmp_path, capsys):
    base = yaml.safe_load(TINY_CONFIG.format(root=tmp_path / "data", out=tmp_path / "runs"))
    spec = {"name": "study", "base": base, "grid": {"lr": [0.001]}, "out_dir": str(tmp_path / "exps")}
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(spec))
    assert train_main(["experiment", str(config), "--set", "epoch=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'epoch'; did you mean 'epochs'?" in err and "Traceback" not in err
    assert not (tmp_path / "exps").exists()
