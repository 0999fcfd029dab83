"""The DICOM node: a pynetdicom Storage SCP (and Verification SCP) that stores the chest radiographs it is sent
and triages them as they arrive through the same :class:`TriageSession` as opened folders.

C-STORE answers (PS3.4 Annex B / PS3.7): 0x0000 stored (or already stored: a resend is stored once); 0xA700 out
of resources when the disk is full (the sender keeps the study and retries); 0xA900 the data set does not match
the SOP class (no SOP Instance UID, a class that is not the context's); 0xC210 the data set cannot be decoded;
0xC211 the instance could not be stored for another reason. Associations from a calling AE title not in
``allowed_aes`` (when given) are rejected (calling AE title not recognised)."""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
    Verification,
)

from cxr_desktop.network.store import BadInstance, InstanceStore, StoreFull
from cxr_desktop.worklist.rows import Row
from cxr_desktop.worklist.session import TriageSession

log = logging.getLogger(__name__)

# chest radiograph storage classes (CR, DX for presentation and for processing, secondary capture)
STORAGE_CLASSES = [
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
]
# what the study reader decodes: uncompressed, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE
TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
SUCCESS, OUT_OF_RESOURCES, NOT_MATCHING, CANNOT_UNDERSTAND, UNABLE_TO_PROCESS = 0x0000, 0xA700, 0xA900, 0xC210, 0xC211
# studies scored together before their results go out: a burst is not held back until all of it is scored
TRIAGE_BATCH = 8
SHUTDOWN_GRACE_S = 30.0  # how long open associations may take to finish after SIGTERM

ScoredCallback = Callable[[Row], None]


@dataclass
class NodeConfig:
    ae_title: str
    port: int
    store: Path
    host: str = "0.0.0.0"
    allowed_aes: list[str] = field(default_factory=list)
    max_pdu: int = 0  # 0: unlimited (pynetdicom's default is 16 kB)
    tls: ssl.SSLContext | None = None  # DICOM TLS (PS3.15 Annex B): ``tls_files.TlsFiles.node_context``
    # associations served at once; one more is rejected (transient, "local limit exceeded"): the sender retries
    max_associations: int = 10


@dataclass
class NodeCounts:
    received: int = 0  # instances stored (resends not counted)
    resent: int = 0
    refused: int = 0  # C-STOREs answered with a failure status
    scored: int = 0


class DicomNode:
    """Receive, store atomically, triage. ``on_scored`` gets each received study's row once it is scored (or
    failed), in the triage thread; results are made there (``network.produce``)."""

    def __init__(self, config: NodeConfig, session: TriageSession, on_scored: ScoredCallback | None = None) -> None:
        if on_scored is not None and session.engine is None:  # rows would reach it unscored, their results lost
            raise ValueError("a node that makes results needs a session with its model loaded")
        self.config = config
        self.session = session
        self.on_scored = on_scored
        self.store = InstanceStore(config.store)
        self.counts = NodeCounts()
        self._queue: queue.Queue[Path] = queue.Queue()
        self._stop = threading.Event()
        self._server = None
        self._triage_thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------------

    def application_entity(self) -> AE:
        ae = AE(ae_title=self.config.ae_title)
        ae.maximum_pdu_size = self.config.max_pdu
        ae.maximum_associations = self.config.max_associations
        ae.require_calling_aet = list(self.config.allowed_aes)
        ae.add_supported_context(Verification)
        for sop_class in STORAGE_CLASSES:
            ae.add_supported_context(sop_class, TRANSFER_SYNTAXES)
        return ae

    def start(self, backlog: Iterable[Path] = ()) -> None:
        """Listen (in pynetdicom's server thread) and triage (in this node's thread); ``backlog``: stored
        instances still waiting for their results (a node stopped before it made them)."""
        for path in backlog:
            self._queue.put(path)
        self._triage_thread = threading.Thread(target=self._triage_loop, name="cxr-node-triage", daemon=True)
        self._triage_thread.start()
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        self._server = self.application_entity().start_server(
            (self.config.host, self.config.port), block=False, evt_handlers=handlers, ssl_context=self.config.tls
        )
        log.info("listening as %s on port %d, storing into %s", self.config.ae_title, self.port, self.config.store)

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose when the configuration said 0)."""
        return self._server.server_address[1] if self._server is not None else self.config.port

    def stop(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Stop accepting associations, let the open ones finish (up to ``grace_s``), then stop triaging once
        what was received is scored."""
        server, self._server = self._server, None
        if server is not None:
            address = server.server_address
            server.shutdown()  # no new associations
            deadline = time.monotonic() + grace_s
            while server.active_associations and time.monotonic() < deadline:
                time.sleep(0.05)
            for assoc in server.active_associations:
                log.warning("aborting an association still open after %.0f s", grace_s)
                assoc.abort()
            log.info("stopped listening on %s", address)
        self._queue.join()  # what was stored is triaged and has its results
        self._stop.set()
        if self._triage_thread is not None:
            self._triage_thread.join()

    # -- handlers (pynetdicom's threads) ---------------------------------------------------------------

    def _on_echo(self, event: evt.Event) -> int:
        return SUCCESS

    def _on_rejected(self, event: evt.Event) -> None:
        requestor = event.assoc.requestor
        log.warning("association from %s (%s) rejected", requestor.ae_title, requestor.address)

    def _on_store(self, event: evt.Event) -> int:
        calling = event.assoc.requestor.ae_title
        status, path = self._receive(event)
        with self._lock:
            if status != SUCCESS:
                self.counts.refused += 1
            elif path is None:
                self.counts.resent += 1
            else:
                self.counts.received += 1
        if path is not None:
            log.info("stored %s from %s", path.name, calling)
            self._queue.put(path)
        return status

    def _receive(self, event: evt.Event) -> tuple[int, Path | None]:
        """The C-STORE's status, and the stored file when it is new."""
        try:
            ds: Dataset = event.dataset  # decodes the data set the peer sent
            sop_instance = str(ds.get("SOPInstanceUID", "") or "")
            sop_class = str(ds.get("SOPClassUID", "") or "")
            patient = str(ds.get("PatientID", "") or "")
        except Exception as exc:  # noqa: BLE001 - a peer's bytes: any decoding error is its fault, told by status
            log.warning("C-STORE refused: the data set cannot be decoded (%s: %s)", type(exc).__name__, exc)
            return CANNOT_UNDERSTAND, None
        if not sop_instance or sop_class != event.context.abstract_syntax:
            log.warning("C-STORE refused: SOP class %r / instance %r do not match the request", sop_class, sop_instance)
            return NOT_MATCHING, None
        try:
            stored = self.store.store(sop_instance, patient, event.encoded_dataset())
        except BadInstance as exc:
            log.warning("C-STORE refused: %s", exc)
            return NOT_MATCHING, None
        except StoreFull as exc:
            log.error("C-STORE refused, out of resources: %s", exc)
            return OUT_OF_RESOURCES, None
        except OSError as exc:
            log.error("C-STORE refused, instance not stored: %s", exc)
            return UNABLE_TO_PROCESS, None
        return SUCCESS, stored.path if stored.new else None

    # -- triage --------------------------------------------------------------------------------------

    def _triage_loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            paths = [first]
            while len(paths) < TRIAGE_BATCH:  # what arrived meanwhile is scored together, a few at a time
                try:
                    paths.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._triage(paths)
            except Exception:  # noqa: BLE001 - the node keeps serving; the ledger brings these back at the next start
                log.exception("triage or results of %d received instances failed; redone at the next start", len(paths))
            finally:
                for _ in paths:
                    self._queue.task_done()

    def _triage(self, paths: list[Path]) -> None:
        self.session.add_paths(paths)
        self.session.score_pending()
        for path in paths:
            row = self.session.row(path)
            if row is None:
                continue
            if self.on_scored is not None:
                self.on_scored(row)
            with self._lock:
                self.counts.scored += 1  # triaged and its results delivered
