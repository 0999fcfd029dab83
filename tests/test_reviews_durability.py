"""Review decisions are durable once acknowledged: a writer is killed with SIGKILL again and again."""

import signal
import sqlite3
import subprocess
import sys
import time

from cxr_desktop.worklist.reviews import ReviewStore

WRITER = """
import sys
from cxr_desktop.worklist.reviews import ReviewStore
store = ReviewStore(sys.argv[1])
start = int(sys.argv[2])
for i in range(start, start + 100000):
    store.set(f"sop:{i}", "confirmed" if i % 2 else "dismissed", f"comment {i}")
    print(i, flush=True)  # acknowledged only after set() returned
"""


def test_every_acknowledged_decision_survives_sigkill(tmp_path):
    db = tmp_path / "reviews.sqlite3"
    acknowledged: list[int] = []
    next_key = 0
    for round_ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(next_key)], stdout=subprocess.PIPE, text=True
        )
        first = proc.stdout.readline()  # the writer is up and has acknowledged one decision
        if first:
            acknowledged.append(int(first))
        deadline = time.time() + 0.05 + 0.05 * round_
        while time.time() < deadline:
            line = proc.stdout.readline()
            if line:
                acknowledged.append(int(line))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        acknowledged += [int(x) for x in rest.split()]
        next_key = (acknowledged[-1] + 1) if acknowledged else next_key
        with sqlite3.connect(db) as check:
            assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        store = ReviewStore(db)
        stored = store.all()
        store.close()
        missing = [i for i in acknowledged if f"sop:{i}" not in stored]
        assert not missing, f"round {round_}: {len(missing)} acknowledged decisions lost"
        assert stored[f"sop:{acknowledged[-1]}"].comment == f"comment {acknowledged[-1]}"
    assert len(acknowledged) > 50
