"""The persistent outbox: result objects waiting to be sent by C-STORE, one folder per destination, one file
per object (written atomically). A sender thread per destination sends what is there, oldest first, in one
association, and deletes each file once the destination has answered success (or a warning); a destination
that is down, refuses, or answers a failure is tried again with back-off (doubling, up to ``max_delay_s``), for
as long as it takes, across restarts of the node: the files stay until sent.

Nothing is lost: a result is in the outbox (fsynced) before the study counts as done. Nothing is sent twice,
with one exception that no sender can avoid without the receiver's help: a node killed after the destination
stored an object and before its file was deleted sends it again after the restart; the object has the same SOP
Instance UID, so the PACS keeps one copy. With ``tls`` (``tls_files.TlsFiles.sending_context``) every association
is DICOM TLS and the destination's certificate is checked against the given CA and its host name or address."""

from __future__ import annotations

import io
import logging
import re
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import ComprehensiveSRStorage, SecondaryCaptureImageStorage

from cxr_desktop.network.store import fsync_folder, write_atomic

log = logging.getLogger(__name__)

RESULT_CLASSES = [ComprehensiveSRStorage, SecondaryCaptureImageStorage]
TEMP = ".tmp"
DESTINATION = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>[^:@]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Destination:
    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Destination:
        """``AE@HOST:PORT``, e.g. ``PACS@10.0.0.5:104``."""
        match = DESTINATION.match(text.strip())
        if not match or not 0 < int(match["port"]) < 65536 or not match["ae"].strip():
            raise ValueError(f"destination {text!r} is not AE@HOST:PORT (an AE title of 1-16 characters)")
        return cls(match["ae"].strip(), match["host"], int(match["port"]))

    @property
    def folder_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.ae_title}@{self.host}_{self.port}")

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def encode(ds: Dataset) -> bytes:
    """A dataset as a DICOM file (preamble, file meta)."""
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


class Outbox:
    """Files waiting for each destination under ``folder``; :meth:`start` sends them in the background."""

    def __init__(
        self,
        folder: Path,
        destinations: list[Destination],
        calling_ae: str,
        min_delay_s: float = 1.0,
        max_delay_s: float = 300.0,
        timeout_s: float = 30.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.destinations = destinations
        self.calling_ae = calling_ae
        self.min_delay_s, self.max_delay_s, self.timeout_s = min_delay_s, max_delay_s, timeout_s
        self.tls = tls
        self._stop = threading.Event()
        self._wake = {d: threading.Event() for d in destinations}
        self._threads: list[threading.Thread] = []
        self.sent = 0
        self.tries_failed = 0  # tries that left files waiting (a destination down, refusing or untrusted)
        for destination in destinations:
            self.queue_folder(destination).mkdir(parents=True, exist_ok=True)
        (self.folder / TEMP).mkdir(parents=True, exist_ok=True)
        for temp in (self.folder / TEMP).glob("*.part"):  # left by a node killed while writing
            temp.unlink(missing_ok=True)

    def queue_folder(self, destination: Destination) -> Path:
        return self.folder / destination.folder_name

    def pending(self, destination: Destination) -> list[Path]:
        files = self.queue_folder(destination).glob("*.dcm")
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def put(self, name: str, data: bytes) -> None:
        """Queue one encoded object for every destination (durably, before this returns)."""
        for destination in self.destinations:
            write_atomic(self.queue_folder(destination) / name, data, self.folder / TEMP)
            self._wake[destination].set()

    # -- sending ---------------------------------------------------------------------------------------

    def start(self) -> None:
        for destination in self.destinations:
            thread = threading.Thread(
                target=self._run, args=(destination,), name=f"cxr-outbox-{destination}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop sending (what is not sent stays for the next start)."""
        self._stop.set()
        for wake in self._wake.values():
            wake.set()
        for thread in self._threads:
            thread.join(timeout_s)

    def _run(self, destination: Destination) -> None:
        delay = self.min_delay_s
        wake = self._wake[destination]
        while not self._stop.is_set():
            wake.clear()
            files = self.pending(destination)
            if not files:
                wake.wait(5.0)
                continue
            if self._send(destination, files):
                delay = self.min_delay_s
                continue
            self.tries_failed += 1
            log.warning("results for %s: %d waiting; next try in %.0f s", destination, len(files), delay)
            self._stop.wait(delay)
            delay = min(delay * 2, self.max_delay_s)

    def _send(self, destination: Destination, files: list[Path]) -> bool:
        """Send ``files`` in one association; True when all were accepted."""
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        for sop_class in RESULT_CLASSES:
            ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        tls_args = (self.tls, destination.host) if self.tls is not None else None
        assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title, tls_args=tls_args)
        if not assoc.is_established:
            secure = " (TLS: is its certificate signed by the CA given, for this host?)" if self.tls else ""
            log.warning("results: no association with %s (refused, aborted or unreachable)%s", destination, secure)
            return False
        try:
            for path in files:
                if self._stop.is_set() or not self._send_one(assoc, destination, path):
                    return False
        finally:
            if assoc.is_established:
                assoc.release()
        return True

    def _send_one(self, assoc, destination: Destination, path: Path) -> bool:
        try:
            sop_class = dcmread(path, stop_before_pixels=True).SOPClassUID
        except (OSError, InvalidDicomError, AttributeError) as exc:  # the queued file is damaged
            bad = path.with_suffix(".bad")
            path.replace(bad)
            log.error("results: %s cannot be read (%s), set aside as %s", path.name, exc, bad.name)
            return True
        if not any(cx.abstract_syntax == sop_class for cx in assoc.accepted_contexts):
            log.warning("results: %s does not accept %s objects (its configuration)", destination, sop_class.name)
            return False
        status = assoc.send_c_store(path)
        code = getattr(status, "Status", None)
        if code is None:
            log.warning("results: %s sent to %s, no answer (connection lost or timed out)", path.name, destination)
            return False
        if code != 0x0000 and not 0xB000 <= code <= 0xBFFF:
            log.warning("results: %s refused by %s with status 0x%04X", path.name, destination, code)
            return False
        path.unlink()
        fsync_folder(path.parent)
        self.sent += 1
        log.info("results: %s stored by %s", path.name, destination)
        return True
