"""Files that are never half-written: written to a temporary file beside the final name and renamed over it
only when complete, so that a full disk or a crash leaves the previous file (or nothing), never a truncated one."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def replaced_when_complete(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """A handle on a temporary file in ``path``'s folder; when the block ends without an exception, the file is
    flushed to disk and renamed to ``path`` (atomic on one file system). On any error the temporary file is
    removed, ``path`` is left as it was, and the error propagates."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        # mkstemp makes it private (0600): the result keeps the old file's mode, or the usual 0644
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o644)
        with os.fdopen(descriptor, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_when_complete(path: str | Path, data: bytes) -> None:
    """``data`` to ``path`` through ``replaced_when_complete``."""
    with replaced_when_complete(path, "wb") as handle:
        handle.write(data)
