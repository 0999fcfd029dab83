import csv
import shutil

import numpy as np
import pytest
from conftest import make_tiny_bundle

from cxr_desktop.cli import COLUMNS, main
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.inference.engine import Engine
from cxr_desktop.worklist.order import QueueEntry, priority_order


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_columns_rows_and_errors(tmp_path, tiny_bundle, mixed_folder):
    out = tmp_path / "triage.csv"
    assert main([str(mixed_folder), "--model", str(tiny_bundle), "--out", str(out), "--quiet"]) == 0
    with open(out) as handle:
        header = handle.readline().strip().split(",")
    assert header == COLUMNS
    assert header[9:23] == list(FINDINGS) and header[23] == "quality"  # the guard's column came last
    rows = read_rows(out)
    assert len(rows) == 13  # 5 DICOMs + 8 PNGs, one row per image file
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    ct = by_name["not_chest_ct_abdomen.dcm"]
    assert ct["status"] == "error" and "modality CT" in ct["error"] and ct["Cardiomegaly"] == ""
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 12
    for r in ok:
        probs = [float(r[name]) for name in FINDINGS]
        assert all(0 <= p <= 1 for p in probs)
        assert r["urgent"] == ("1" if float(r["Cardiomegaly"]) >= float(r["cardiomegaly_threshold"]) else "0")
        assert r["study_key"]
        assert r["quality"] == "unchecked"  # this model has no input guard
    assert ct["quality"] == ""
    assert by_name["siim_cr_chest_pa_jpeg_baseline.dcm"]["view_position"] == "PA"


def test_engine_scores_match_between_batch_sizes(tiny_bundle, mixed_folder):
    files = sorted(p for p in mixed_folder.rglob("*") if p.suffix in (".png", ".dcm"))
    a = {r.path: r for r in Engine.from_path(tiny_bundle, device="cpu", batch_size=1).triage(files)}
    b = {r.path: r for r in Engine.from_path(tiny_bundle, device="cpu", batch_size=8).triage(files)}
    for path, result in a.items():
        if result.ok:
            assert np.allclose(list(result.probabilities.values()), list(b[path].probabilities.values()), atol=1e-5)


def test_no_model_is_a_clear_failure(tmp_path, capsys):
    assert main([str(tmp_path), "--model", str(tmp_path / "nothing")]) == 2
    assert "card.json is missing" in capsys.readouterr().err


def test_heatmaps_for_urgent_studies(tmp_path, mixed_folder):
    bundle = make_tiny_bundle(tmp_path / "always", cardiomegaly_threshold=1e-6)  # every study urgent
    heat = tmp_path / "heat"
    assert (
        main(
            [
                str(mixed_folder / "nih"),
                "--model",
                str(bundle),
                "--out",
                str(tmp_path / "o.csv"),
                "--heatmaps",
                str(heat),
                "--quiet",
            ]
        )
        == 0
    )
    assert len(list(heat.glob("*.png"))) == 8


def test_engine_heatmap_is_on_the_original_geometry(tiny_bundle):
    engine = Engine.from_path(tiny_bundle, device="cpu")
    image = np.random.default_rng(0).integers(0, 255, (300, 200), dtype=np.uint8)
    heat = engine.heatmap(image)
    assert heat.shape == (300, 200) and 0 <= heat.min() and heat.max() <= 1


@pytest.mark.parametrize("max_wait", [None, 60.0])
def test_priority_order_urgent_first_then_arrival_with_wait_cap(max_wait):
    now = 1000.0
    entries = [
        QueueEntry(0, now - 120, False),
        QueueEntry(1, now - 10, True),
        QueueEntry(2, now - 5, False),
        QueueEntry(3, now - 1, True),
    ]
    order = priority_order(entries, now, max_wait)
    if max_wait is None:
        assert order == [1, 3, 0, 2]
    else:  # study 0 waited 120 s > 60 s: promoted to the urgent tier, by arrival
        assert order == [0, 1, 3, 2]


def test_self_test_decodes_every_shipped_codec(tiny_bundle, dicom_dir, capsys):
    from cxr_desktop.ui.app import main as app_main

    jpeg = str(dicom_dir / "siim_cr_chest_pa_jpeg_baseline.dcm")
    assert app_main(["--self-test", jpeg, "--model", str(tiny_bundle), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "RLE, JPEG-LS, JPEG 2000 decoded" in out and "siim_cr_chest_pa_jpeg_baseline.dcm Cardiomegaly" in out
    ct = str(dicom_dir / "not_chest_ct_abdomen.dcm")
    assert app_main(["--self-test", ct, "--model", str(tiny_bundle), "--device", "cpu"]) == 1
    assert "modality CT" in capsys.readouterr().err


def test_self_test_takes_a_folder_as_the_app_does(tiny_bundle, dicom_dir, tmp_path, capsys):
    """A folder stands for its studies: the CT in it is listed as refused, the radiographs are scored; a
    folder where nothing can be scored fails."""
    from cxr_desktop.ui.app import main as app_main

    assert app_main(["--self-test", str(dicom_dir), "--model", str(tiny_bundle), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "not_chest_ct_abdomen.dcm refused as the app would: not a chest radiograph" in out
    assert "siim_cr_chest_pa_jpeg_baseline.dcm Cardiomegaly" in out
    only_ct = tmp_path / "only-ct"
    only_ct.mkdir()
    shutil.copy(dicom_dir / "not_chest_ct_abdomen.dcm", only_ct)
    assert app_main(["--self-test", str(only_ct), "--model", str(tiny_bundle), "--device", "cpu"]) == 1
    assert "no study in this folder could be scored" in capsys.readouterr().err


def test_self_test_fails_clearly_without_a_model(tmp_path, capsys):
    from cxr_desktop.ui.app import main as app_main

    assert app_main(["--self-test", "--model", str(tmp_path / "nothing")]) == 1
    assert "self-test FAILED: cannot load model" in capsys.readouterr().err
