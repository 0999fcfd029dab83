"""The triage session, in plain Python (no Qt): events, reading order, error rows, one header read and one
decode per study, the bounded image cache, a lower-case card, and the same rows for `cxr-triage` and the app."""

from __future__ import annotations

import csv
import json
import threading

import cv2
import numpy as np
import pytest
from conftest import make_tiny_bundle
from hostile_inputs import CHEST

import cxr_desktop.studies.scan as scan_module
import cxr_desktop.worklist.session as session_module
from cxr_desktop.cli import main as triage_main
from cxr_desktop.core.bundle import CARD_NAME, load_bundle, write_card
from cxr_desktop.inference.engine import Engine
from cxr_desktop.worklist.export import export_csv
from cxr_desktop.worklist.image_cache import ImageCache
from cxr_desktop.worklist.reviews import ReviewStore
from cxr_desktop.worklist.rows import DONE, ERROR, QUEUED
from cxr_desktop.worklist.session import TriageSession


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine(load_bundle(tiny_bundle), device="cpu", batch_size=4)


@pytest.fixture
def folder(tmp_path):
    """Six readable PNGs (different crops of a synthetic chest, so different scores) and two bad files."""
    studies = tmp_path / "studies"
    studies.mkdir()
    for i in range(6):
        cv2.imwrite(str(studies / f"chest_{i}.png"), np.roll(CHEST, 12 * i, axis=1))
    (studies / "empty.png").write_bytes(b"")
    (studies / "truncated.png").write_bytes(cv2.imencode(".png", CHEST)[1].tobytes()[:400])
    return studies


def spy(monkeypatch, module, name):
    """Count the calls of ``module.name`` (per path) while still calling it."""
    calls: dict = {}
    real = getattr(module, name)

    def counted(path, *args, **kwargs):
        calls[path] = calls.get(path, 0) + 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_events_announce_rows_progress_and_idle(engine, folder):
    session = TriageSession(engine)
    seen: dict[str, list] = {"rows": [], "progress": [], "idle": []}
    session.events.rows_changed.connect(lambda paths: seen["rows"].append(list(paths)))
    session.events.progress.connect(lambda done, total: seen["progress"].append((done, total)))
    session.events.idle.connect(lambda: seen["idle"].append(True))
    session.add_paths([folder])
    assert {p.name for p in seen["rows"][0]} == {p.name for p in folder.iterdir()}  # listed, queued or refused
    assert session.counts()[QUEUED] == 7 and session.counts()[ERROR] == 1  # the empty file fails at its header
    session.score_pending()
    assert seen["progress"][-1] == (7, 7) and seen["idle"] == [True]
    scored = {p for paths in seen["rows"][1:] for p in paths}
    assert len(scored) == 7  # every queued row announced once it was applied


def test_rows_are_ordered_by_score_and_errors_are_rows(tmp_path, folder, engine):
    scores = [r.probabilities["Cardiomegaly"] for r in engine.triage(sorted(folder.glob("chest_*.png")))]
    bundle = make_tiny_bundle(tmp_path / "median", float(np.median(scores)))
    session = TriageSession(Engine(load_bundle(bundle), device="cpu"))
    rows = session.run([folder])
    assert [r.path.name for r in rows] == sorted(p.name for p in folder.iterdir())  # arrival = scan order
    errors = {r.path.name: r.error for r in rows if r.status == ERROR}
    assert set(errors) == {"empty.png", "truncated.png"}
    assert "empty" in errors["empty.png"] and "corrupt or truncated" in errors["truncated.png"]
    ordered = session.snapshot().rows
    urgent = [r.probabilities["Cardiomegaly"] for r in ordered if r.urgent]
    assert 0 < len(urgent) < 6 and urgent == sorted(urgent, reverse=True)
    assert all(r.urgent for r in ordered[: len(urgent)])
    assert session.set_operating_point("sensitivity_0.90") == len(urgent)


def test_each_study_is_read_once_and_decoded_once(monkeypatch, engine, folder):
    headers = spy(monkeypatch, scan_module, "read_header")
    decodes = spy(monkeypatch, session_module, "read_same_study")
    session = TriageSession(engine)
    session.run([folder])
    good = sorted(folder.glob("chest_*.png"))
    for path in good:  # the viewer and Grad-CAM take the image scoring decoded
        assert session.image(path).shape == CHEST.shape
        assert session.heatmap(path).shape == CHEST.shape
    assert all(headers[p] == 1 for p in folder.iterdir())
    assert all(decodes[p] == 1 for p in good)
    session.add_paths([folder])  # opened again: nothing is read again
    session.score_pending()
    assert all(headers[p] == 1 for p in folder.iterdir())


def test_two_threads_asking_for_one_study_get_one_decode():
    cache = ImageCache()
    calls, started, release = [], threading.Event(), threading.Event()

    def load():
        calls.append(1)
        started.set()
        release.wait(5)
        return np.zeros((4, 4), np.uint8)

    first = threading.Thread(target=cache.get_or_load, args=("a", load))
    first.start()
    started.wait(5)
    second = threading.Thread(target=cache.get_or_load, args=("a", load))
    second.start()
    release.set()
    first.join(5)
    second.join(5)
    assert calls == [1] and "a" in cache


def test_the_image_cache_is_bounded_by_count_and_bytes():
    by_count = ImageCache(max_items=3)
    for i in range(5):
        by_count.put(i, np.zeros((10, 10), np.uint8))
    assert len(by_count) == 3 and 0 not in by_count and 4 in by_count
    by_count.get(2)  # used: the least recently used goes first
    by_count.put(5, np.zeros((10, 10), np.uint8))
    assert 2 in by_count and 3 not in by_count
    by_bytes = ImageCache(max_bytes=250)
    for i in range(4):
        by_bytes.put(i, np.zeros((10, 10), np.uint8))
    assert len(by_bytes) == 2 and by_bytes.nbytes == 200
    by_bytes.put("huge", np.zeros((100, 100), np.uint8))  # over the bound alone: not kept
    assert "huge" not in by_bytes and by_bytes.nbytes == 200
    with pytest.raises(ValueError):  # a cached image is shared: nobody may change it
        by_bytes.get(3)[0, 0] = 1


def test_a_small_cache_decodes_again_only_what_it_let_go(monkeypatch, engine, folder):
    decodes = spy(monkeypatch, session_module, "read_same_study")
    session = TriageSession(engine, cache=ImageCache(max_items=2))
    session.run([folder])
    assert len(session.cache) == 2
    last = sorted(folder.glob("chest_*.png"))[-1]
    session.image(last)
    assert decodes[last] == 1


def test_a_lower_case_card_triages_a_folder(tmp_path, tiny_bundle, folder):
    """A card that names its urgent finding and thresholds in another spelling is normalised at load: nothing
    downstream sees the raw string (issue 14)."""
    bundle = tmp_path / "lower"
    bundle.mkdir()
    for item in tiny_bundle.iterdir():
        (bundle / item.name).write_bytes(item.read_bytes())
    card = json.loads((bundle / CARD_NAME).read_text())
    card["urgent_finding"] = "cardiomegaly"
    card["operating_points"] = {name: {"cardiomegaly": 1e-6} for name in card["operating_points"]}
    card["trained_findings"] = [name.lower() for name in card["trained_findings"]]
    write_card(bundle, card)  # resealed: this test is about spellings, not tampering
    out = tmp_path / "lower.csv"
    assert triage_main([str(folder), "--model", str(bundle), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(r["status"] == "ok" for r in rows) == 6 and all(r["urgent"] == "1" for r in rows if r["status"] == "ok")
    engine = Engine(load_bundle(bundle), device="cpu")
    assert engine.card.urgent_finding == "Cardiomegaly" and engine.policy.finding == "Cardiomegaly"
    session = TriageSession(engine)
    session.run([folder])
    assert session.heatmap(next(folder.glob("chest_*.png"))).max() <= 1.0


def test_cxr_triage_and_the_app_give_the_same_rows(tmp_path, tiny_bundle, folder):
    """`cxr-triage` and a session driven as the app drives it (reviews attached, scored in another thread)."""
    cli_out = tmp_path / "cli.csv"
    assert triage_main([str(folder), "--model", str(tiny_bundle), "--out", str(cli_out), "--quiet"]) == 0
    app = TriageSession(max_wait_s=1800, reviews=ReviewStore(tmp_path / "r.sqlite3"))
    app.add_paths([str(folder)])  # the folder opened before the model has loaded
    app.set_engine(Engine(load_bundle(tiny_bundle), device="cpu"))
    worker = threading.Thread(target=app.score_pending)
    worker.start()
    worker.join(120)
    app_out = tmp_path / "app.csv"
    export_csv(app.snapshot().rows, app_out, threshold=app.policy.threshold)
    with open(cli_out, newline="") as a, open(app_out, newline="") as b:
        cli = {r["path"]: r for r in csv.DictReader(a)}
        shown = {r["path"]: r for r in csv.DictReader(b)}
    assert set(cli) == set(shown) and len(cli) == 8
    for path, row in cli.items():
        assert {"ok": "done"}.get(row["status"], row["status"]) == shown[path]["status"]  # each CSV's own word
        for column in set(shown[path]) & set(row) - {"status"}:
            assert row[column] == shown[path][column], (path, column)
    assert {r.status for r in app.rows_in_arrival()} == {DONE, ERROR}
