"""The results as DICOM (``cxr-triage --dicom-out``): a TID 1500 structured report for every scored DICOM
study and a heatmap secondary capture for an urgent one, checked by tools no one here wrote: dicom3tools'
dciodvfy (no errors) and dcmtk's dsrdump (parses, says what the issue asks)."""

from __future__ import annotations

import os

import pydicom
import pytest
from conftest import make_tiny_bundle
from dicom_peers import dciodvfy_errors, dsrdump

from cxr_desktop.cli import main
from cxr_desktop.core.card import read_card
from cxr_desktop.inference.engine import Engine
from cxr_desktop.network.produce import ResultSink, result_objects
from cxr_desktop.network.results import ResultError
from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom
from cxr_desktop.worklist.session import TriageSession

CHEST = ["nih_dx_chest_uncompressed.dcm", "siim_cr_chest_pa_jpeg_baseline.dcm", "cr_mono1_10bit_chest_no_meta.dcm"]


@pytest.fixture(scope="module")
def results(tmp_path_factory, dicom_dir):
    """Batch results of the real chest DICOMs (and the CT, which has none) by a model that flags every film."""
    folder = tmp_path_factory.mktemp("dicom-results")
    bundle = make_tiny_bundle(folder / "bundle", cardiomegaly_threshold=1e-6)
    studies = folder / "studies"
    studies.mkdir()
    for name in [*CHEST, "not_chest_ct_abdomen.dcm"]:
        (studies / name).symlink_to(dicom_dir / name)
    out = folder / "out"
    code = main(
        [
            str(studies),
            "--model",
            str(bundle),
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(folder / "t.csv"),
            "--dicom-out",
            str(out),
        ]
    )
    assert code == 0
    return out, bundle, dicom_dir


def test_every_scored_dicom_study_has_an_sr_and_an_urgent_one_a_capture(results):
    out, _, _ = results
    names = sorted(p.name[:3] for p in out.glob("*.dcm"))
    assert names == ["SC_"] * 3 + ["SR_"] * 3


def test_results_pass_dciodvfy(results):
    out, _, _ = results
    for path in sorted(out.glob("*.dcm")):
        assert dciodvfy_errors(path) == [], path.name


def test_the_sr_references_its_source_in_a_new_series_of_its_study_and_says_what_it_is(results):
    out, bundle, dicom_dir = results
    card = read_card(bundle)
    sources = {pydicom.dcmread(dicom_dir / n, force=True).SOPInstanceUID: dicom_dir / n for n in CHEST}
    for path in sorted(out.glob("SR_*.dcm")):
        sr = pydicom.dcmread(path)
        evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
        referenced = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        source = pydicom.dcmread(sources[referenced], force=True)
        assert sr.StudyInstanceUID == source.StudyInstanceUID == evidence.StudyInstanceUID
        assert sr.SeriesInstanceUID != source.SeriesInstanceUID
        text = dsrdump(path)
        for expected in [
            '(8186001,SCT,"Cardiomegaly")',
            '"AI triage result, not for diagnosis"',
            '(52101004,SCT,"Present")',
            '(URGENT,99CXRTRIAGE,"Urgent")',
            "Input image check",
            f'"{card.fingerprint}"',
            f"{card.model_id}",
            "threshold 0.000001",
            "operating point sensitivity_0.90",
            "AI triage score",
            referenced,
        ]:
            assert expected in text, (expected, path.name)


def test_the_capture_has_the_disclaimer_burned_in_and_the_source_patient(results):
    out, _, dicom_dir = results
    for path in sorted(out.glob("SC_*.dcm")):
        capture = pydicom.dcmread(path)
        assert capture.BurnedInAnnotation == "YES" and capture.PhotometricInterpretation == "RGB"
        assert "not for diagnosis" in capture.SeriesDescription
        pixels = capture.pixel_array
        band = pixels[: pixels.shape[0] // 20]
        assert band.max() == 255 and (band == 0).mean() > 0.5  # white text on the black band across the top


def test_the_same_study_scored_again_gives_the_same_uids(results, tmp_path):
    out, bundle, dicom_dir = results
    again = tmp_path / "again"
    main(
        [
            str(dicom_dir / CHEST[0]),
            "--model",
            str(bundle),
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(tmp_path / "t.csv"),
            "--dicom-out",
            str(again),
        ]
    )
    assert {p.name for p in again.glob("*.dcm")} <= {p.name for p in out.glob("*.dcm")}


def test_a_source_replaced_after_scoring_lends_its_identity_to_no_result(tmp_path, dicom_dir):
    """A file renamed over a scored study (another patient's film) between scoring and making the results: no
    SR or capture is made for it (they would carry the new file's patient and study with the old one's score);
    the other study's results are made as usual."""
    bundle = make_tiny_bundle(tmp_path / "bundle", cardiomegaly_threshold=1e-6)
    session = TriageSession(Engine.from_path(bundle, device="cpu"))
    studies = tmp_path / "studies"
    studies.mkdir()
    first = write_dicom(studies / "IM0001.dcm", synthetic_chest(128, seed=1), patient_id="PAT-A")
    second = write_dicom(studies / "IM0002.dcm", synthetic_chest(128, seed=2), patient_id="PAT-B")
    rows = {row.path: row for row in session.run([first, second])}
    assert all(row.urgent for row in rows.values())
    other = write_dicom(tmp_path / "other.dcm", synthetic_chest(128, seed=3), patient_id="PAT-C")
    os.replace(other, first)  # PAT-C's film now under the name PAT-A's study was scored from

    with pytest.raises(ResultError, match="now holds another study"):
        result_objects(session, rows[first])
    sink = ResultSink(folder=tmp_path / "out")
    assert sink.deliver(session, rows[first]) == []
    assert len(sink.deliver(session, rows[second])) == 2  # SR and capture
    patients = {pydicom.dcmread(p).PatientID for p in (tmp_path / "out").glob("*.dcm")}
    assert patients == {"PAT-B"}
