"""Outputs written whole or not at all (``core.atomic``): a killed writer's temporary file is removed by the
next write of the same name, one of a writer still at work is not; the rename reaches the disk."""

import os
import stat

from cxr_desktop.core import atomic
from cxr_desktop.core.atomic import write_bytes_when_complete


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    out = tmp_path / "triage.csv"
    stale = tmp_path / ".triage.csv.k1ll3d.part"  # what kill -9 during a write leaves
    stale.write_text("half a CSV")
    old = atomic.STARTED - 60
    os.utime(stale, (old, old))
    working = tmp_path / ".triage.csv.busy.part"  # another writer's, started after this process
    working.write_text("being written")
    other = tmp_path / ".other.csv.k1ll3d.part"  # another name's: not this write's business
    other.write_text("x")
    os.utime(other, (old, old))
    write_bytes_when_complete(out, b"path,score\n")
    assert out.read_bytes() == b"path,score\n"
    assert not stale.exists() and working.exists() and other.exists()


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    synced_modes = []
    real_fsync = os.fsync

    def fsync(descriptor):
        synced_modes.append(os.fstat(descriptor).st_mode)
        return real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    write_bytes_when_complete(tmp_path / "a.csv", b"x")
    assert [stat.S_ISDIR(mode) for mode in synced_modes] == [False, True], "the file's data, then the folder"
