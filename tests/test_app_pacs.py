"""The app as a DICOM node (Settings ▸ Receive from PACS…): a film pushed by dcmtk's storescu appears in the
worklist, scored and ordered like any other; the status bar says AE@port and how many studies were received;
the SR goes to the PACS (dcmtk's storescp)."""

from __future__ import annotations

from dicom_peers import echoscu, free_port, storescp, storescu
from PySide6.QtCore import QSettings

from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.ui.pacs_receiver import ReceiverSettings
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
