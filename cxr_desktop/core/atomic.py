"""Files that are never half-written: written to a temporary file beside the final name and renamed over it
only when complete, so that a full disk or a crash leaves the previous file (or nothing), never a truncated one.
The rename is made durable (the folder is fsynced), and temporary files that a killed writer left beside the
name (older than this process) are removed at the next write."""

from __future__ import annotations

import glob
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

STARTED = time.time()  # a temporary file older than this was left by another, finished (or killed) process


def _remove_stale_temporaries(path: Path) -> None:
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        try:
            if stale.stat().st_mtime < STARTED:
                stale.unlink()
                log.info("removed %s, left by a writer that was killed", stale.name)
        except OSError:  # gone meanwhile, or not ours to remove: the write goes on
            continue


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a power loss cannot bring the old name back)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # a platform or file system that cannot open folders: the rename itself is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError as exc:  # some file systems refuse to fsync a folder; the file's own data is on disk
        log.debug("could not fsync %s: %s", folder, exc)
    finally:
        os.close(descriptor)


@contextmanager
def replaced_when_complete(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """A handle on a temporary file in ``path``'s folder; when the block ends without an exception, the file is
    flushed to disk and renamed to ``path`` (atomic on one file system). On any error the temporary file is
    removed, ``path`` is left as it was, and the error propagates."""
    path = Path(path)
    _remove_stale_temporaries(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        # mkstemp makes it private (0600): the result keeps the old file's mode, or the usual 0644
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o644)
        with os.fdopen(descriptor, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_folder(path.parent)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_when_complete(path: str | Path, data: bytes) -> None:
    """``data`` to ``path`` through ``replaced_when_complete``."""
    with replaced_when_complete(path, "wb") as handle:
        handle.write(data)
