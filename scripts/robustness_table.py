"""Write docs/robustness.md: the bad-input catalogue (tests/bad_inputs.py) run through `cxr-triage` with the
shipped model, with the exact reason each file gets.

    .venv/bin/python scripts/robustness_table.py > docs/robustness.md
"""

from __future__ import annotations

import csv
import io
import logging
import sys
import tempfile
from contextlib import redirect_stderr
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bad_inputs import CASES, build_catalogue  # noqa: E402

from cxr_desktop.cli import main as triage_main  # noqa: E402
from cxr_desktop.core.card import read_card  # noqa: E402
from cxr_desktop.core.resources import default_model_dir  # noqa: E402

HEADER = """# Robustness: what happens to bad input

Every kind below is generated at test time by `tests/bad_inputs.py` and checked by `tests/test_bad_inputs.py`
twice: through `cxr-triage` (the CSV row) and through the app's worklist (the row's status and reason), with
good studies in the same folder that must still be scored. No kind crashes either program or stops the
queue. The table was produced with the shipped model by

    .venv/bin/python scripts/robustness_table.py > docs/robustness.md

Other guarantees of the same issue, and the tests that check them:

| Guarantee | Test |
|---|---|
| A review decision is on disk once the user has made it (SIGKILL of a writer, many times, DB intact) | `tests/test_reviews_durability.py` |
| The trainer resumes after SIGKILL and ends with the metrics of an uninterrupted run | `tests/test_trainer_runs.py::test_resume_after_kill_matches_an_uninterrupted_run` |
| A bundle with a wrong sha256, unknown format version, other labels, truncated weights or a pickle payload is refused; the app keeps its model | `tests/test_bundle.py`, `tests/test_app_input.py` |
| A changed ONNX copy, or one that computes something else than the weights, is refused | `tests/test_onnx_backend.py` |
| One integrity record covers the whole bundle: `card.json` records the weights' and the ONNX copy's sha256, and `bundle_sha256` is the sha256 of the card's own content, checked at every load; an edited threshold, urgent finding, preprocessing or model id is refused; the first 12 hex digits are the bundle's fingerprint, shown beside the model id in the app and on `cxr-triage`'s stderr | `tests/test_bundle_integrity.py` |
| The default bundle's record is pinned in the package (`core/resources.py`): an edited default bundle is refused even when its record was recomputed | `tests/test_bundle_integrity.py::test_an_edited_default_bundle_is_refused_even_when_resealed` |
| The ONNX agreement probe is 4 of the shipped real radiographs, picked, cropped and gamma-varied by a seed drawn at every load, plus 2 noise images; an ONNX crafted to match the weights on noise only (which passed the old seed-0 noise probe) is refused | `tests/test_bundle_integrity.py::test_a_crafted_onnx_that_passes_a_noise_probe_is_refused` |
| No network access at run time (sockets blocked) | `tests/test_privacy_offline.py` |
| Logs and messages never contain patient names or IDs | `tests/test_privacy_offline.py` |
| A file deleted between scan and read; a file the OS refuses to read | `tests/test_bad_inputs.py` |
| Any exception while reading, decoding or scoring one file becomes that file's error row (CLI and worklist); the next file is scored | `tests/test_hardening.py::test_any_exception_of_a_reader_is_that_files_error` |
| A FIFO given by name is refused at once (only regular files are opened, with `O_NONBLOCK` and `fstat`) | `tests/test_hardening.py::test_a_fifo_given_by_name_is_refused_without_blocking` |
| What one file may cost: 256 MB on disk, 64,000,000 decoded pixels, at most 64 KiB after a PNG's IEND, a JPEG's end marker or a DICOM's pixel data | the table below, rows 17-19 and 38-40 |
| DICOM pixel data whose length is not rows x columns x samples x bits (one pad byte allowed) is refused | `tests/test_hardening.py::test_pixel_data_length_checks` |
| A lateral view (ViewPosition LL, RL, LATERAL…, or a lateral view code) is scored but never flagged urgent; the row and `cxr-triage`'s stderr say it is outside the model's scope | `tests/test_hardening.py::test_a_lateral_view_is_scored_but_never_urgent` |
| Text cells starting with `=`, `+`, `-`, `@`, tab or CR get a leading `'` in `cxr-triage` and review-export CSVs; probability cells stay numbers | `tests/test_hardening.py::test_csv_cells_that_start_a_formula_are_neutralised` |
| A model with non-finite outputs is refused at load (probe batch); non-finite outputs in a batch become error rows; a card `input_size` outside 16-2048 px is refused; weights/ONNX files must be regular files inside the bundle folder | `tests/test_hardening.py` |
| Reviews are keyed by patient + study + instance (raster: content hash); another patient's file with the same instance UID gets no review and shows "ID clash" | `tests/test_review_store_faults.py` |
| A damaged review store (not a database, or failing the integrity check at start) is kept as `reviews.sqlite3.damaged-…`, a new one is started with what can be read, and a banner says so; a store that cannot be written runs read-only with a banner and refuses decisions visibly; a lock costs at most 0.1 s and the failed save is shown | `tests/test_review_store_faults.py` |
| The watched folder reads a file once its size and mtime have settled (1 s), waits up to 30 s for an empty file to start filling, and reads a failed file again when it changes | `tests/test_watch_folder.py` |
| A row's identity and its pixels come from one read of the file: scoring (CLI and app) and the viewer decode header and pixels together and compare them with the row's; a file replaced between the scan and the scoring is scored as the study it now holds (its patient, its score), one that changes while it is read is an error row (read again when it settles), and the image cache is keyed by study, not path, so that the viewer never shows another patient's pixels under a row | `tests/test_identity.py` |
| Watched folder: a scored file replaced by another study with the same name (renamed over it, or rewritten in place with its old size and mtime: the stamp includes inode and ctime) is read again as that study: the row takes its identity and score, its earlier review stays in the store under the old study, the new one starts with none; its heatmap is dropped | `tests/test_watch_folder.py::test_a_scored_file_replaced_by_another_study_is_read_again_as_that_study`, `::test_a_file_rewritten_in_place_is_found_by_the_sweep`, `tests/test_identity.py::test_the_viewer_never_shows_another_studys_pixels_under_a_row` |
| Watched folder: every folder under the opened ones is watched (events), also those created later (`PAT123/STUDY1/IM0001.dcm`): new files there are read with the same 1 s settle as top-level ones; a sweep of the tree every 15 s finds rewrites in place and changes on shares without events | `tests/test_watch_folder.py::test_studies_written_into_new_sub_folders_are_seen_by_their_events` |
| A folder that cannot be listed gets an error row with the reason (CLI CSV, worklist, export), is counted among `cxr-triage`'s errors and named on stderr; it is listed again when it can be; a file without a suffix that cannot be opened is listed with its reason, not dropped. Root reads a `chmod 000` folder and file (tested by a simulated refusal, and by `chmod 000` for other users) | `tests/test_identity.py` |
| Two windows (two stores on one file) never overwrite each other's decisions: a save writes only the fields the reader changed, the stored review is shown back, and a window shows the other's saves at its next redraw | `tests/test_reading_room.py::test_two_app_windows_never_overwrite_each_others_decisions` |
| The review store deleted or replaced while the app runs is noticed (the file under the path is not the one opened) at the next redraw or save: it is recreated (or the new file used) with this session's saved decisions and arrival times, and a banner says so | `tests/test_reading_room.py` |
| A study's arrival time is kept in the review store: its waiting time and Max-wait priority survive a restart | `tests/test_reading_room.py::test_the_waiting_time_survives_a_restart` |
| The flaky watched-folder test: its fixture took the idle of the model's first pass for the opened folder's and wrote its file before the folder was scanned; it now waits for the scoring thread with a blocking call, and the test makes the first pass late on purpose | `tests/test_watch_folder.py::test_an_empty_file_is_waited_for_until_it_fills` |

Files that are not studies by their name (`.txt`, `.csv`, `.pdf`, …) are skipped by the folder scan and not
listed; files without an extension are listed only when they carry the DICOM preamble. A FIFO, socket or
device with a name a study may have is listed with its reason and never opened for reading.

| # | Input | Outcome | Reason shown in the row / CSV |
|---|---|---|---|
"""

FOOTER = """
Two more kinds need a moment in between or another user, so they are checked at the engine in
`tests/test_bad_inputs.py` rather than in this table:

| Input | Outcome | Reason |
|---|---|---|
| file deleted between the header scan and the pixel read | refused, the next study is scored | file no longer exists |
| file the operating system refuses to read (EACCES) | refused | permission denied |

The issue listed a 16-bit PNG and an RGBA PNG among the bad inputs. They are valid radiographs in common
export formats (16-bit gray holds 10-14-bit detector data), so refusing them would lose a study: they are
read at full depth (16-bit) or by luminance with the alpha channel dropped (RGBA), and scored. Likewise a JPEG
saved with a `.png` name is read by its content, and a file name that is not valid UTF-8 is scored and
written to CSV with the odd bytes escaped (`\\udcff`), so the CSV stays valid UTF-8.
"""


GUARD_COMMAND = """    .venv/bin/python scripts/non_chest_images.py /tmp/non-chest
    .venv/bin/cxr-train guard BUNDLE --images ../shared/data/nih14-sample ../shared/data/nih14-extra \\
        --labels ../shared/data/Data_Entry_2017_v2020.csv.gz --reference TRAINING_IMAGES.csv --non-chest /tmp/non-chest"""


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound near 0 and 1, unlike the normal approximation)."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def guard_section() -> str:
    """The shipped model's input guard as its card records it (what ``cxr-train guard`` measured)."""
    card = read_card(default_model_dir())
    if not card.guard:
        return "\n## The input guard\n\nThe shipped model carries no input guard.\n"
    lines = [
        "\n## The input guard (quality column)\n",
        "Every scored study gets a verdict from the model's own pooled features (`cxr_desktop/core/guard.py`): "
        "`probably not a chest radiograph` (a distance from the reference radiographs beyond the 99th percentile "
        "of NIH validation films), `probably rotated` or `probably inverted polarity` (a linear probe), both "
        "with the probe's reason first (`probably rotated, or not a chest radiograph`), or `lateral view` (from "
        "the header). Such a study is shown with a warning and never flagged urgent on its score alone. "
        "Measured by",
        "",
        GUARD_COMMAND,
        "",
        f"for the shipped model ({card.guard['how']}):",
        "",
        "| images | n | caught (not `ok`) | rate | 95 % interval (Wilson) | reasons given |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, row in card.guard["measured"].items():
        low, high = wilson_interval(row["flagged"], row["n"])
        reasons = "; ".join(f"{k}: {v}" for k, v in row.items() if k not in ("n", "flagged", "rate", "ok"))
        lines.append(
            f"| {name} | {row['n']} | {row['flagged']} | {row['rate']:.3f} | {low:.3f}–{high:.3f} | {reasons} |"
        )
    lines.append(
        "\nFor the upright (untouched) NIH films the rate is the false-alarm rate; for every other row it is the "
        "detection rate. Each NIH film was judged by a guard fitted without its patient's fold, so no film "
        "judged its own fit; the shipped guard, fitted on all of them, is measured on the images that are not "
        "chest radiographs, which no fit saw. The abdominal CT is also refused by its header before any score; "
        "here its pixels were given to the guard directly."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "catalogue"
        cases = build_catalogue(folder)
        out = Path(tmp) / "triage.csv"
        with redirect_stderr(io.StringIO()):
            code = triage_main([str(folder), "--out", str(out), "--quiet"])
        if code != 0:
            raise SystemExit(f"cxr-triage exited with {code}")
        rows = {r["path"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
        lines = [HEADER.rstrip("\n")]
        for number, case in enumerate(CASES, start=1):
            path = next(p for p, c in cases.items() if c is case)
            row = rows[str(path).encode("utf-8", "backslashreplace").decode()]
            outcome = (
                "refused" if row["status"] == "error" else f"scored (Cardiomegaly {float(row['Cardiomegaly']):.2f})"
            )
            shown = row["error"].replace(str(folder) + "/", "").replace("|", "\\|") or case.note
            lines.append(f"| {number} | {case.kind} | {outcome} | {shown} |")
    refused = sum(1 for c in CASES if c.reason)
    lines.append(f"\n{refused} kinds refused with a reason, {len(CASES) - refused} accepted and scored.")
    lines.append(FOOTER)
    lines.append(guard_section())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
