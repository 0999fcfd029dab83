"""The shipped model's input guard on real radiographs (issue 13, item 4): untouched films pass, rotated and
inverted ones are caught, named for what they are and never flagged urgent on their score alone; the demo
studies all pass. The shipped guard was fitted on every NIH film in ../shared (these among them), so this checks
its behaviour end to end through `cxr-triage`; the measurement on films a fit never saw is the cross-fit in
docs/robustness.md."""

import csv

import cv2
import numpy as np
import pytest
from conftest import DEMO

from cxr_desktop.cli import main as triage_main
from cxr_desktop.core.guard import INVERTED, INVERTED_OR_NOT_CHEST, OK, ROTATED, ROTATED_OR_NOT_CHEST
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.inference.engine import Engine


@pytest.fixture(scope="module")
def engine():
    engine = Engine.from_path(default_model_dir(), device="cpu")
    assert engine.guard is not None, "the shipped model must carry its input guard"
    return engine


def test_the_demo_studies_all_pass_the_guard(engine):
    results = list(engine.triage(sorted(DEMO.glob("*.dcm"))))
    assert results and all(r.ok and r.quality == OK for r in results)


def test_rotated_and_inverted_nih_films_are_caught_and_never_urgent(engine, nih_sample, tmp_path):
    sources = sorted((nih_sample / "images").glob("*.png"))[:12]
    variants = {"upright": lambda g: g, "rot90": lambda g: np.rot90(g), "rot180": lambda g: np.rot90(g, 2)}
    variants["inverted"] = lambda g: 255 - g
    for source in sources:
        gray = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
        for name, vary in variants.items():
            cv2.imwrite(str(tmp_path / f"{source.stem}-{name}.png"), np.ascontiguousarray(vary(gray)))
    out = tmp_path / "triage.csv"
    assert triage_main([str(tmp_path), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_variant = {name: [r for r in rows if r["path"].endswith(f"-{name}.png")] for name in variants}
    assert sum(r["quality"] == OK for r in by_variant["upright"]) >= 11
    # caught, and called what they are: the probe's reason comes first even where the distance also fires
    # (these are 384 px copies, farther from the reference than the 1024 px films the guard was measured on)
    for name, reasons in (
        ("rot90", (ROTATED, ROTATED_OR_NOT_CHEST)),
        ("rot180", (ROTATED, ROTATED_OR_NOT_CHEST)),
        ("inverted", (INVERTED, INVERTED_OR_NOT_CHEST)),
    ):
        assert sum(r["quality"] in reasons for r in by_variant[name]) >= 11
    assert all(r["urgent"] == "0" for r in rows if r["quality"] != OK)
