"""``cxr-train`` as an ML engineer drives it: runs that never mix, every value checked before anything is
written, stratified image limits, CSV data, ``list`` and ``--help``."""

import argparse
import json
import logging

import numpy as np
import pytest
import yaml
from trainer_helpers import make_csv_dataset, make_folder_dataset, write_config

from cxr_desktop.core.onnx_model import quiet_export_logs
from trainer.cli import build_parser
from trainer.cli import main as train_main
from trainer.config import load_config
from trainer.data.local import csv_splits, read_label_csv
from trainer.data.samples import stratified_sample
from trainer.run import balance_report, build_splits


def history(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny-cli")
    return make_folder_dataset(tmp / "data", per_class=6)


def test_a_second_train_into_a_run_folder_is_refused_unless_overwrite(tiny, tmp_path, capsys):
    config = write_config(tmp_path, tiny, epochs="1")
    run_dir = tmp_path / "runs" / "tiny"
    assert train_main(["train", "-c", str(config)]) == 0
    saved, split = (run_dir / "config.yaml").read_text(), (run_dir / "split.csv").read_text()
    capsys.readouterr()
    assert train_main(["train", "-c", str(config), "--set", "lr=0.01"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert (run_dir / "config.yaml").read_text() == saved and (run_dir / "split.csv").read_text() == split
    assert train_main(["train", "-c", str(config), "--set", "lr=0.01", "--overwrite"]) == 0
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["lr"] == 0.01
    assert len(history(run_dir)) == 1


def test_resume_keeps_the_saved_config_and_refuses_a_conflicting_value(tiny, tmp_path, capsys):
    config = write_config(tmp_path, tiny, epochs="1")
    run_dir = tmp_path / "runs" / "first"
    assert train_main(["train", "-c", str(config), "--set", "name=first"]) == 0
    capsys.readouterr()
    assert train_main(["train", "--resume", str(run_dir), "--set", "lr=0.01"]) == 2
    err = capsys.readouterr().err
    assert "lr=0.01" in err and "0.001" in err and "Traceback" not in err
    assert train_main(["train", "--resume", str(run_dir), "--set", "epochs=2"]) == 2
    assert "epochs" in capsys.readouterr().err
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["epochs"] == 1
    # the same command line again with --resume has no conflict
    assert train_main(["train", "-c", str(config), "--set", "name=first", "--resume", str(run_dir)]) == 0
    assert len(history(run_dir)) == 1
    assert train_main(["train", "--resume", str(tmp_path / "runs" / "nothing")]) == 2
    assert "no run to resume" in capsys.readouterr().err


BAD_VALUES = [
    ("schedule=cosin", "did you mean 'cosine'?"),
    ("epochs=two", "epochs: expected a whole number, got 'two'"),
    ("lr=abc", "lr: expected a number, got 'abc'"),
    ("learning_rate=0.01", "unknown key 'learning_rate'; did you mean 'lr'?"),
    ("architecture=resnet19", "did you mean 'resnet18'?"),
    ("augment=[rotat:5]", "did you mean 'rotate'?"),
    ("augment=[rotate:x]", "must be a number"),
    ("dataset=foldr", "did you mean 'folder'?"),
    ("balance=oversampel", "did you mean 'oversample'?"),
    ("precision=bf61", "did you mean 'bf16'?"),
    ("init=imagnet", "did you mean 'imagenet'?"),
    ("preprocessing.resize=letterbx", "did you mean 'letterbox'?"),
    ("binary=Cardiomegally", "did you mean 'Cardiomegaly'?"),
    ("labels_csv=labels.csv", "only for dataset nih"),
    ("batch_size=0", "batch_size: must be >= 1"),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES)
def test_a_bad_value_fails_with_one_line_before_the_run_folder_exists(tiny, tmp_path, capsys, override, message):
    config = write_config(tmp_path, tiny)
    assert train_main(["train", "-c", str(config), "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_several_bad_values_are_named_together(tiny, tmp_path):
    with pytest.raises(ValueError) as caught:
        load_config(write_config(tmp_path, tiny), ["schedule=cosin", "lr=abc"])
    assert "2 problems" in str(caught.value) and "cosine" in str(caught.value) and "lr:" in str(caught.value)


def test_a_missing_data_folder_fails_before_the_run_folder_exists(tmp_path, capsys):
    config = write_config(tmp_path, tmp_path / "nowhere")
    assert train_main(["train", "-c", str(config)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_max_train_images_is_a_seeded_stratified_sample(tiny, tmp_path):
    config = load_config(write_config(tmp_path, tiny), ["max_train_images=8"])
    full = build_splits(load_config(write_config(tmp_path, tiny)))
    splits = build_splits(config)
    column = splits.train.labels[:, 1]
    assert len(splits.train) == 8 and int(column.sum()) == 4 and int((column == 0).sum()) == 4
    assert set(splits.train.paths) <= set(full.train.paths)
    assert splits.notes["max_train_images"]["kept"] == 8
    assert build_splits(config).train.paths == splits.train.paths  # seeded
    other_seed = build_splits(load_config(write_config(tmp_path, tiny), ["max_train_images=8", "seed=3"]))
    assert other_seed.train.paths != splits.train.paths


def test_stratified_sample_keeps_class_shares_and_every_class():
    from trainer.data.local import binary_table

    paths = [f"img{i}.png" for i in range(100)]
    table = binary_table(paths, [i < 10 for i in range(100)], paths, "Cardiomegaly")  # 10 % positive, sorted first
    kept, _ = stratified_sample(table, 20, seed=0)
    assert int(kept.labels[:, 1].sum()) == 2 and len(kept) == 20
    kept, _ = stratified_sample(table, 5, seed=0)
    assert int(kept.labels[:, 1].sum()) == 1  # 0.5 rounds down, but no class vanishes


def test_label_csv_paths_are_relative_to_the_csv_folder(tmp_path, monkeypatch):
    csv_path = make_csv_dataset(tmp_path / "data", per_class=6)
    absolute = tmp_path / "data" / "images" / "train-other-0.png"
    with open(csv_path, "a", encoding="utf-8") as handle:
        handle.write(f"{absolute},other,,train\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working folder plays no part
    rows = read_label_csv(csv_path)
    assert len(rows) == 25 and all(r.path.is_absolute() and r.path.is_file() for r in rows)
    assert rows[0].path == (tmp_path / "data" / "images" / "train-cardiomegaly-0.png").resolve()
    assert rows[0].positive and rows[0].patient == "train-cardiomegaly-p0" and rows[0].split == "train"
    assert rows[-1].path == absolute.resolve() and not rows[-1].positive and rows[-1].patient == str(absolute)
    (csv_path.parent / "missing.csv").write_text("path,label\nimages/train-other-0.png,other\n")
    with pytest.raises(ValueError, match="1 of 1 images not found"):
        read_label_csv(csv_path.parent / "missing.csv")  # relative to the CSV's folder, not data/
    (csv_path.parent / "badsplit.csv").write_text("path,label,split\n../images/train-other-0.png,other,tset\n")
    with pytest.raises(ValueError, match="not train, val or test"):
        read_label_csv(csv_path.parent / "badsplit.csv")


def test_class_counts_cap_csv_data(tmp_path):
    csv_path = make_csv_dataset(tmp_path / "data", per_class=10)
    splits = csv_splits(csv_path, "Cardiomegaly", "cardiomegaly", 0.2, 0, {"cardiomegaly": 3, "other": 5})
    column = splits.train.labels[:, 1]
    assert int(column.sum()) == 3 and int((column == 0).sum()) == 5
    assert len(splits.test) == 20 and len(splits.val) > 0
    assert not set(splits.train.patients) & set(splits.val.patients)
    uncapped = csv_splits(csv_path, "Cardiomegaly", "cardiomegaly", 0.2, 0)
    assert len(uncapped.train) > 8
    config = write_config(tmp_path, csv_path, dataset="csv", class_counts="{cardiomegaly: 2, other: 4}")
    assert len(build_splits(load_config(config)).train) == 6


def test_a_csv_run_trains_from_another_working_folder(tmp_path, monkeypatch):
    csv_path = make_csv_dataset(tmp_path / "data", per_class=6)
    config = write_config(tmp_path, csv_path, dataset="csv", epochs="1")
    monkeypatch.chdir(tmp_path / "data")
    assert train_main(["train", "-c", str(config)]) == 0
    assert json.loads((tmp_path / "runs" / "tiny" / "data.json").read_text())["counts"]["test"] == 12


def test_oversample_to_above_the_majority_is_warned(tiny, tmp_path, caplog):
    config = load_config(write_config(tmp_path, tiny), ["balance=oversample", "oversample_to=100"])
    with caplog.at_level(logging.INFO):
        balance_report(config, build_splits(config))
    assert any(r.levelno == logging.WARNING and "larger than the majority" in r.getMessage() for r in caplog.records)


def test_list_prints_registries_and_every_key(capsys):
    assert train_main(["list", "keys"]) == 0
    keys = capsys.readouterr().out
    lr = next(line for line in keys.splitlines() if line.startswith("lr "))
    assert "float" in lr and "0.0003" in lr and "learning rate" in lr
    assert "oversample_to" in keys and "absolute number" in keys and "[cosine | plateau]" in keys
    assert train_main(["list", "architectures"]) == 0
    assert "resnet18" in capsys.readouterr().out
    assert train_main(["list", "augmentations"]) == 0
    out = capsys.readouterr().out
    assert "rotate" in out and "name:param" in out


def test_every_flag_has_help():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {action.dest}"
        for name, parser in sub.choices.items()
        if name not in ("evaluate", "export")  # edited elsewhere
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert not missing
    assert "path,label[,patient_id][,split]" in sub.choices["train"].format_help()


def test_the_onnx_export_loggers_are_quiet_and_ours_are_not(caplog):
    with caplog.at_level(logging.INFO), quiet_export_logs():
        logging.getLogger("onnxscript.optimizer").info("a pass")
        logging.getLogger("onnx_ir.passes.common").info("another pass")
        logging.getLogger("torch.onnx._internal").info("exporting")
        logging.getLogger("cxr_desktop.core.onnx_model").info("wrote model.onnx")
    assert [r.getMessage() for r in caplog.records] == ["wrote model.onnx"]
    assert logging.getLogger("onnxscript").level == logging.NOTSET  # restored


def test_split_notes_are_plain_json(tiny, tmp_path):
    splits = build_splits(load_config(write_config(tmp_path, tiny), ["max_train_images=6"]))
    json.dumps(splits.notes)
    assert np.isnan(splits.train.labels[:, 0]).all()
