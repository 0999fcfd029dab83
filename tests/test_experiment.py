import yaml
from trainer_helpers import TINY_CONFIG, make_folder_dataset

from trainer.cli import main as train_main


def test_experiment_grid_report_and_skip_on_rerun(tmp_path):
    root = make_folder_dataset(tmp_path / "data", per_class=10)
    base = yaml.safe_load(TINY_CONFIG.format(root=root, out=tmp_path / "runs"))
    spec = {
        "name": "tiny-study",
        "base": base,
        "base_overrides": {"epochs": 1},  # the study's own change to its shared base
        "baseline": {"augment": ["none"]},
        "grid": {"augment": [["none"], ["rotate:5"], ["blur"]], "seed": [0]},
        "caveats": ["synthetic images"],
    }
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(spec))
    folder = tmp_path / "exp"
    assert train_main(["experiment", str(config), "--out", str(folder)]) == 0
    report = (folder / "report.md").read_text()
    assert "augment=rotate5__seed=0" in report and "DeLong" in report and "baseline" in report
    assert "synthetic images" in report
    assert (folder / "roc.png").stat().st_size > 1000
    assert (folder / "gallery.png").stat().st_size > 1000
    stamp = (folder / "runs" / "augment=none__seed=0" / "checkpoint.pt").stat().st_mtime
    assert train_main(["experiment", str(config), "--out", str(folder)]) == 0  # finished runs are skipped
    assert (folder / "runs" / "augment=none__seed=0" / "checkpoint.pt").stat().st_mtime == stamp
    metrics = (folder / "runs" / "augment=none__seed=0" / "metrics.jsonl").read_text()
    assert len(metrics.splitlines()) == 1  # base_overrides made it one epoch

    # a wider grid reported before its new runs exist: finished runs only, the rest named, nothing trained
    spec["grid"]["seed"] = [0, 1]
    config.write_text(yaml.safe_dump(spec))
    assert train_main(["experiment", str(config), "--out", str(folder), "--report-only"]) == 0
    report = (folder / "report.md").read_text()
    assert "Not finished when this report was written" in report and "- augment=blur__seed=1" in report
    assert not (folder / "runs" / "augment=blur__seed=1").exists()


def test_a_grid_can_vary_any_key_and_is_checked_before_training(tmp_path):
    import pytest

    from trainer.grid import expand, grid_configs

    root = make_folder_dataset(tmp_path / "data", per_class=4)
    base = yaml.safe_load(TINY_CONFIG.format(root=root, out=tmp_path / "runs"))
    spec = {"name": "lr-study", "base": base, "base_overrides": {"epochs": 1}, "grid": {"lr": [0.001, 0.003]}}
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(spec))
    folder = tmp_path / "exp"
    assert train_main(["experiment", str(config), "--out", str(folder)]) == 0
    for lr in (0.001, 0.003):
        saved = yaml.safe_load((folder / "runs" / f"lr={lr}" / "config.yaml").read_text())
        assert saved["lr"] == lr and saved["epochs"] == 1
    assert "lr=0.003" in (folder / "report.md").read_text()

    # dotted keys reach nested ones, and names stay in the earlier studies' order
    runs = expand({"grid": {"preprocessing.input_size": [32, 48], "seed": [0]}}, tmp_path / "x")
    assert [r.name for r in runs] == ["seed=0__preprocessing.input_size=32", "seed=0__preprocessing.input_size=48"]
    configs = grid_configs(spec, runs)
    assert [configs[r.name].spec().input_size for r in runs] == [32, 48]

    # a bad key or value fails before any run folder is made
    for grid, message in (({"learning_rate": [0.1]}, "did you mean 'lr'"), ({"schedule": ["cosin"]}, "'cosine'")):
        config.write_text(yaml.safe_dump({**spec, "name": "bad", "grid": grid}))
        with pytest.raises(ValueError, match=message):
            from trainer.experiment import run_experiment

            run_experiment(config, tmp_path / "bad")
        assert not (tmp_path / "bad").exists()
