"""The app as a DICOM node (Settings ▸ Receive from PACS…): a film pushed by dcmtk's storescu appears in the
worklist, scored and ordered like any other; the status bar says AE@port and how many studies were received;
the SR goes to the PACS (dcmtk's storescp)."""

from __future__ import annotations

import dataclasses

from dicom_peers import echoscu, free_port, make_ca, make_cert, storescp, storescu
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDialog

from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.ui.pacs_receiver import ReceiverDialog, ReceiverSettings
from cxr_desktop.worklist.reviews import ReviewStore
from cxr_desktop.worklist.rows import DONE

FILM = "nih_dx_chest_uncompressed.dcm"


def test_received_films_join_the_worklist_and_the_status_bar_counts_them(
    qtbot, tmp_path, monkeypatch, tiny_bundle, dicom_dir
):
    ini = tmp_path / "settings.ini"
    monkeypatch.setenv("CXR_SETTINGS", str(ini))
    port, pacs_port = free_port(), free_port()
    config = ReceiverSettings(
        True, "CXRTRIAGE", port, ["MODALITY"], [f"PACS@127.0.0.1:{pacs_port}"], str(tmp_path / "in")
    )
    settings = QSettings(str(ini), QSettings.Format.IniFormat)
    config.save(settings)
    settings.sync()
    with storescp(tmp_path / "pacs", pacs_port):
        window = MainWindow(tiny_bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
        qtbot.addWidget(window)
        window.show()
        try:
            qtbot.waitUntil(lambda: window.engine is not None, timeout=120_000)
            assert f"CXRTRIAGE@{port}" in window.receiver_label.text()
            assert echoscu(port, calling="STRANGER").returncode != 0
            assert storescu(port, dicom_dir / FILM).returncode == 0
            qtbot.waitUntil(lambda: window.session.counts().get("done", 0) == 1, timeout=120_000)
            row = window.session.rows_in_arrival()[0]
            assert row.status == DONE and row.path.parent == tmp_path / "in"
            qtbot.waitUntil(lambda: "1 study received" in window.receiver_label.text(), timeout=10_000)
            qtbot.waitUntil(lambda: any((tmp_path / "pacs").glob("SR*")), timeout=60_000)
            window.grab().save(str(tmp_path / "app-pacs.png"))
        finally:
            window.close()
    assert window.receiver.node is None  # closing the window stopped the node


def _open_window(qtbot, tmp_path, monkeypatch, bundle, config: ReceiverSettings) -> MainWindow:
    ini = tmp_path / "settings.ini"
    monkeypatch.setenv("CXR_SETTINGS", str(ini))
    settings = QSettings(str(ini), QSettings.Format.IniFormat)
    config.save(settings)
    settings.sync()
    window = MainWindow(bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    window.show()
    return window


def test_the_app_receives_and_sends_over_dicom_tls_set_in_its_settings(
    qtbot, tmp_path, monkeypatch, tiny_bundle, dicom_dir
):
    """Mutual TLS both ways: only a modality with a certificate of the hospital CA gets in, and the SR reaches a
    PACS whose certificate that CA signed for its address (and which checks the node's own)."""
    ca = make_ca(tmp_path, "hospital")
    node_key, node_cert = make_cert(tmp_path, "cxr-node", ca)
    pacs_key, pacs_cert = make_cert(tmp_path, "pacs", ca, address="127.0.0.1")
    modality_key, modality_cert = make_cert(tmp_path, "modality", ca)
    modality_tls = ("+tls", str(modality_key), str(modality_cert), "+cf", str(ca[1]))
    port, pacs_port = free_port(), free_port()
    config = ReceiverSettings(
        True, "CXRTRIAGE", port, ["MODALITY"], [f"PACS@127.0.0.1:{pacs_port}"], str(tmp_path / "in"),
        tls_cert=str(node_cert), tls_key=str(node_key), tls_ca=str(ca[1]), send_tls_ca=str(ca[1]),
    )  # fmt: skip
    with storescp(tmp_path / "pacs", pacs_port, tls=("+tls", str(pacs_key), str(pacs_cert), "+cf", str(ca[1]))):
        window = _open_window(qtbot, tmp_path, monkeypatch, tiny_bundle, config)
        try:
            assert f"CXRTRIAGE@{port} (DICOM TLS)" in window.receiver_label.text()
            assert echoscu(port).returncode != 0  # plain DICOM
            stranger_key, stranger_cert = make_cert(tmp_path, "stranger", make_ca(tmp_path, "elsewhere"))
            assert echoscu(port, tls=("+tls", str(stranger_key), str(stranger_cert), "-ic")).returncode != 0
            assert echoscu(port, tls=modality_tls).returncode == 0
            assert storescu(port, dicom_dir / FILM, tls=modality_tls).returncode == 0
            qtbot.waitUntil(lambda: window.session.counts().get("done", 0) == 1, timeout=120_000)
            qtbot.waitUntil(lambda: any((tmp_path / "pacs").glob("SR*")), timeout=60_000)
        finally:
            window.close()


def test_the_dialog_keeps_unusable_tls_settings_open_with_the_reason(qtbot, tmp_path):
    config = ReceiverSettings(True, "CXRTRIAGE", free_port(), tls_cert=str(tmp_path / "absent.crt"))
    dialog = ReceiverDialog(config)
    qtbot.addWidget(dialog)
    assert dialog.settings() == config  # what the dialog shows is what it saves
    dialog.accept()
    assert dialog.result() != QDialog.DialogCode.Accepted and dialog.problem.isVisibleTo(dialog)
    assert "DICOM TLS needs both the TLS certificate and its private key" in dialog.problem.text()
    dialog.enabled.setChecked(False)  # not listening: nothing to check
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_incomplete_tls_settings_are_refused_with_the_reason(qtbot, tmp_path, monkeypatch, tiny_bundle):
    """Settings saved before (or edited by hand) that cannot be used: the banner says why at start."""
    cert = tmp_path / "node.crt"
    cert.write_text("not a certificate")
    config = ReceiverSettings(True, "CXRTRIAGE", free_port(), store=str(tmp_path / "in"), tls_cert=str(cert))
    window = _open_window(qtbot, tmp_path, monkeypatch, tiny_bundle, config)
    try:
        assert window.receiver.node is None and window.receiver_label.text() == ""
        assert "Not receiving from PACS: DICOM TLS needs both" in window.banner.text()
        key = tmp_path / "node.key"
        key.write_text("not a key either")
        assert not window.start_receiver(dataclasses.replace(config, tls_key=str(key)))
        assert "cannot use the TLS certificate" in window.banner.text()
        assert "not a PEM certificate and its key" in window.banner.text()
    finally:
        window.close()
