"""The app as a DICOM node: Settings ▸ Receive from PACS… starts the same listener as ``cxr-triage listen``
(``cxr_desktop.network``) on the window's triage session, so received studies appear in the worklist live and
take their place like any other. The status bar says whether the node is listening (AE@port, and whether over
DICOM TLS) and how many studies it received. Results (SR, and the heatmap capture of an urgent study) go to the
destinations once a study is scored, through the same persistent outbox; the settings are kept between runs
(QSettings)."""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from platformdirs import user_data_dir
from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from cxr_desktop.network.listen import OUTBOX
from cxr_desktop.network.node import DicomNode, NodeConfig
from cxr_desktop.network.outbox import Destination, Outbox
from cxr_desktop.network.produce import LEDGER, ResultSink
from cxr_desktop.network.tls_files import TlsFiles
from cxr_desktop.worklist.rows import QUEUED
from cxr_desktop.worklist.session import TriageSession

log = logging.getLogger(__name__)

KEY = "pacs/"  # QSettings group of the receiver's settings
STATUS_MS = 1000
TLS_FIELDS = ("tls_cert", "tls_key", "tls_ca", "send_tls_ca")  # PEM file paths; "" for none
PEM_FILTER = "PEM (*.pem *.crt *.cer *.key);;All (*)"


@dataclass
class ReceiverSettings:
    enabled: bool = False
    ae_title: str = "CXRTRIAGE"
    port: int = 11112
    allowed: list[str] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)  # AE@HOST:PORT
    store: str = ""
    tls_cert: str = ""  # DICOM TLS: the node's certificate; with tls_key, the node listens over TLS only
    tls_key: str = ""
    tls_ca: str = ""  # accept only peers with a certificate signed by this CA
    send_tls_ca: str = ""  # send results over TLS to destinations with a certificate signed by this CA

    @classmethod
    def load(cls, settings: QSettings) -> ReceiverSettings:
        def words(name: str) -> list[str]:
            return str(settings.value(KEY + name, "") or "").split()

        default = cls()
        return cls(
            enabled=str(settings.value(KEY + "enabled", "false")).lower() == "true",
            ae_title=str(settings.value(KEY + "ae_title", default.ae_title)),
            port=int(settings.value(KEY + "port", default.port)),
            allowed=words("allowed"),
            destinations=words("destinations"),
            store=str(settings.value(KEY + "store", "") or ""),
            **{name: str(settings.value(KEY + name, "") or "") for name in TLS_FIELDS},
        )

    def save(self, settings: QSettings) -> None:
        for name, value in [
            ("enabled", "true" if self.enabled else "false"),
            ("ae_title", self.ae_title),
            ("port", self.port),
            ("allowed", " ".join(self.allowed)),
            ("destinations", " ".join(self.destinations)),
            ("store", self.store),
            *((name, getattr(self, name)) for name in TLS_FIELDS),
        ]:
            settings.setValue(KEY + name, value)

    @property
    def store_folder(self) -> Path:
        return Path(self.store) if self.store else Path(user_data_dir("cxr-desktop")) / "received"

    @property
    def tls(self) -> TlsFiles:
        def path(value: str) -> Path | None:
            return Path(value.strip()).expanduser() if value.strip() else None

        return TlsFiles(
            cert=path(self.tls_cert), key=path(self.tls_key), ca=path(self.tls_ca), send_ca=path(self.send_tls_ca)
        )

    def network(self) -> tuple[list[Destination], ssl.SSLContext | None, ssl.SSLContext | None]:
        """The result destinations, the node's TLS and the TLS for sending results (None: plain DICOM);
        ``ValueError`` saying what is wrong with them (nothing is started)."""
        destinations = [Destination.parse(text) for text in self.destinations]
        return destinations, self.tls.node_context(), self.tls.sending_context(bool(destinations))


class PacsReceiver(QObject):
    """Starts and stops the node on ``session``; ``status`` carries the status bar's text ("" when off)."""

    status = Signal(str)

    def __init__(self, session: TriageSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.node: DicomNode | None = None
        self.outbox: Outbox | None = None
        self.sink: ResultSink | None = None
        self.label = ""
        self._delivering = threading.Lock()  # one study's results made once, whichever thread scored it
        self._timer = QTimer(self, interval=STATUS_MS, timeout=self._tell)
        session.events.rows_changed.connect(self._scored)  # in the thread that scored: results made there

    def start(self, config: ReceiverSettings) -> None:
        """Listen with ``config`` (a running node is stopped first). ``ValueError`` / ``OSError`` say why not."""
        self.stop()
        destinations, tls, send_tls = config.network()
        store = config.store_folder
        self.outbox = Outbox(store / OUTBOX, destinations, config.ae_title, tls=send_tls) if destinations else None
        self.sink = ResultSink(None, self.outbox, store / LEDGER)
        node_config = NodeConfig(config.ae_title, config.port, store, allowed_aes=config.allowed, tls=tls)
        node = DicomNode(node_config, self.session)
        node.start(self.sink.undelivered(node.store.instances()))
        if self.outbox is not None:
            self.outbox.start()
        self.node, self.label = node, f"{config.ae_title}@{node.port}" + (" (DICOM TLS)" if tls else "")
        if self.outbox is not None and bool(tls) != bool(send_tls):
            self.label += ", results sent over " + ("DICOM TLS" if send_tls else "plain DICOM")
        self._timer.start()
        self._tell()

    def stop(self) -> None:
        node, self.node = self.node, None
        self._timer.stop()
        if node is not None:
            node.stop(grace_s=5)
        if self.outbox is not None:
            self.outbox.stop()
            self.outbox = None
        self.status.emit("")

    def _tell(self) -> None:
        if self.node is not None:
            received = self.node.counts.received
            studies = "study" if received == 1 else "studies"
            self.status.emit(f"Receiving from PACS as {self.label} · {received} {studies} received")

    def _scored(self, paths: list) -> None:
        """Results of the received studies among ``paths`` once they are scored (or failed), each once."""
        node, sink = self.node, self.sink
        if node is None or sink is None:
            return
        store = node.store.folder
        for path in paths:
            if Path(path).parent != store:
                continue
            with self._delivering:
                row = self.session.row(path)
                if row is not None and row.status != QUEUED and sink.undelivered([Path(path)]):
                    sink.deliver(self.session, row)


class ReceiverDialog(QDialog):
    """Settings ▸ Receive from PACS…: the node's AE title, port, allowed calling AEs, result destinations."""

    def __init__(self, config: ReceiverSettings, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Receive from PACS")
        form = QFormLayout(self)
        self.enabled = QCheckBox("Listen for studies sent by the PACS or a modality (C-STORE)")
        self.enabled.setChecked(config.enabled)
        self.ae_title = QLineEdit(config.ae_title)
        self.ae_title.setMaxLength(16)
        self.port = QSpinBox(minimum=1, maximum=65535, value=config.port)
        self.allowed = QLineEdit(" ".join(config.allowed), placeholderText="any calling AE title")
        self.destinations = QLineEdit(" ".join(config.destinations), placeholderText="PACS@10.0.0.5:104 ...")
        self.store = QLineEdit(config.store, placeholderText=str(config.store_folder))
        self.tls = {name: QLineEdit(getattr(config, name), placeholderText="none") for name in TLS_FIELDS}
        self.tls["tls_cert"].setPlaceholderText("none: plain DICOM")
        for label, widget in [
            ("", self.enabled),
            ("AE title", self.ae_title),
            ("Port", self.port),
            ("Allowed calling AEs", self.allowed),
            ("Send results to", self.destinations),
            ("Store received studies in", self.store),
            ("DICOM TLS certificate (PEM)", _with_browse(self.tls["tls_cert"])),
            ("Its private key (PEM)", _with_browse(self.tls["tls_key"])),
            ("Accept only peers signed by (CA)", _with_browse(self.tls["tls_ca"])),
            ("Send results over TLS, signed by (CA)", _with_browse(self.tls["send_tls_ca"])),
        ]:
            form.addRow(label, widget)
        self.problem = QLabel(styleSheet="color: #a00", wordWrap=True)
        self.problem.hide()
        form.addRow(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self) -> None:
        """Closed with OK only when the destinations and TLS files can be used (or listening is off): else the
        reason is shown above the buttons and nothing is saved."""
        config = self.settings()
        try:
            if config.enabled:
                config.network()
        except ValueError as exc:
            self.problem.setText(f"Cannot use these settings: {exc}")
            self.problem.show()
            return
        super().accept()

    def settings(self) -> ReceiverSettings:
        return ReceiverSettings(
            enabled=self.enabled.isChecked(),
            ae_title=self.ae_title.text().strip() or "CXRTRIAGE",
            port=self.port.value(),
            allowed=self.allowed.text().split(),
            destinations=self.destinations.text().split(),
            store=self.store.text().strip(),
            **{name: field.text().strip() for name, field in self.tls.items()},
        )


def _with_browse(line: QLineEdit) -> QWidget:
    """``line`` with a "…" button that fills it with a file picked in a file dialog."""
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    button = QToolButton(text="…", toolTip="Choose a PEM file")

    def browse() -> None:
        path, _ = QFileDialog.getOpenFileName(box, "Choose a PEM file", line.text(), PEM_FILTER)
        if path:
            line.setText(path)

    button.clicked.connect(browse)
    layout.addWidget(line)
    layout.addWidget(button)
    return box


class ReceiverActions:
    """Mixed into the main window (which provides ``session``, ``settings``, ``banner`` and ``statusBar``):
    the receiver, its menu entry and its status bar label."""

    def _init_receiver(self, menu) -> None:
        self.receiver = PacsReceiver(self.session, self)
        self.receiver_label = QLabel()
        self.statusBar().addPermanentWidget(self.receiver_label)
        self.receiver.status.connect(self.receiver_label.setText)
        action = QAction("Receive from PACS…", self)
        action.setToolTip("Run a DICOM node: studies pushed by the PACS join the worklist; results go back as DICOM")
        action.triggered.connect(self.configure_receiver)
        menu.addAction(action)
        config = ReceiverSettings.load(self.settings)
        if config.enabled:
            self.start_receiver(config)

    def configure_receiver(self) -> None:
        dialog = ReceiverDialog(ReceiverSettings.load(self.settings), self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            config = dialog.settings()
            config.save(self.settings)
            if config.enabled:
                self.start_receiver(config)
            else:
                self.receiver.stop()

    def start_receiver(self, config: ReceiverSettings) -> bool:
        try:
            self.receiver.start(config)
        except (ValueError, OSError) as exc:
            self.receiver.stop()
            self.banner.say(f"Not receiving from PACS: {exc}")
            return False
        return True
