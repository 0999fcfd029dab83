"""The node's store of received instances: each written atomically (a temporary name in the store's
``.incoming`` folder, fsync, rename, fsync of the folder), named by its SOP Instance UID and a hash of its
patient ID so that a resent instance is stored once and another patient's file that reuses the UID is not
lost. A kill -9 leaves at most a temporary file, which the next start deletes; the store never holds a partial
instance."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

INCOMING = ".incoming"
UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")  # a DICOM UID: digits and dots, no leading/trailing dot
MAX_UID_LENGTH = 64


class StoreFull(OSError):
    """The disk (or the user's quota) has no room for the instance: the sender must keep it."""


class BadInstance(ValueError):
    """The instance cannot be stored (e.g. its SOP Instance UID is not a valid UID)."""


@dataclass(frozen=True)
class Stored:
    path: Path
    new: bool  # False: the same instance of the same patient was already in the store


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on a folder; the rename itself was done
        log.debug("fsync of folder %s: %s", folder, exc)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, temp_folder: Path) -> None:
    """Write ``data`` to ``path`` through a temporary file in ``temp_folder`` (same file system): fsync, then
    rename. ``StoreFull`` when the disk is full; the temporary file never stays behind."""
    temp_folder.mkdir(parents=True, exist_ok=True)
    temp = temp_folder / f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.part"
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreFull(exc.errno, f"no room to store {path.name}: {exc.strerror}") from exc
        raise
    fsync_folder(path.parent)


class InstanceStore:
    """Received instances in ``folder``, one file each, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.incoming = self.folder / INCOMING
        self.folder.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(exist_ok=True)
        self.clean_incoming()

    def clean_incoming(self) -> int:
        """Delete temporary files left by a node that was killed while writing; returns how many."""
        count = 0
        for temp in self.incoming.glob("*.part"):
            temp.unlink(missing_ok=True)
            count += 1
        if count:
            log.warning("removed %d partial instances left by an interrupted node in %s", count, self.incoming)
        return count

    def path_for(self, sop_instance_uid: str, patient_id: str) -> Path:
        uid = sop_instance_uid.strip().rstrip("\0 ")
        if not UID_PATTERN.match(uid) or len(uid) > MAX_UID_LENGTH:
            raise BadInstance(f"SOP Instance UID {uid[:80]!r} is not a valid DICOM UID")
        patient = hashlib.sha256(patient_id.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        return self.folder / f"{uid}_{patient}.dcm"

    def store(self, sop_instance_uid: str, patient_id: str, data: bytes) -> Stored:
        """Store one encoded instance (a DICOM file: preamble, file meta, dataset) unless it is there."""
        path = self.path_for(sop_instance_uid, patient_id)
        if path.exists():
            return Stored(path, new=False)
        write_atomic(path, data, self.incoming)
        return Stored(path, new=True)

    def instances(self) -> list[Path]:
        return sorted(self.folder.glob("*.dcm"))
