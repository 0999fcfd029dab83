"""Triage works with sockets blocked, and logs never carry patient names or IDs."""

import logging
import socket

import pytest

from cxr_desktop.cli import main
from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom


@pytest.fixture()
def named_studies(tmp_path):
    folder = tmp_path / "studies"
    folder.mkdir()
    write_dicom(folder / "a.dcm", synthetic_chest(128), patient_name="DOE^JANE", patient_id="PID-98765")
    write_dicom(
        folder / "b.dcm",
        synthetic_chest(128, seed=2),
        patient_name="ROE^RICHARD",
        patient_id="PID-13579",
        modality="CT",
    )
    (folder / "c.png").write_bytes(b"truncated")
    return folder


def test_triage_runs_with_sockets_blocked(monkeypatch, tmp_path, tiny_bundle, named_studies):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during triage")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    out = tmp_path / "out.csv"
    assert main([str(named_studies), "--model", str(tiny_bundle), "--out", str(out), "--quiet"]) == 0
    assert len(out.read_text().splitlines()) == 4


def test_logs_hold_no_patient_names_or_ids(caplog, capsys, tmp_path, tiny_bundle, named_studies):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out.csv"
    assert main([str(named_studies), "--model", str(tiny_bundle), "--out", str(out), "--quiet"]) == 0
    logged = caplog.text + capsys.readouterr().err
    for secret in ("DOE", "JANE", "PID-98765", "ROE", "RICHARD", "PID-13579"):
        assert secret not in logged
    assert "PID-98765" in out.read_text()  # the output file is for the clinic and keeps the patient ID
