"""A scored study's result as DICOM objects, made with highdicom (never hand-encoded):

- a Comprehensive SR holding a TID 1500 Measurement Report: the finding (Cardiomegaly, SNOMED CT 8186001),
  present or absent at the threshold, the score and the threshold, the triage priority, the input check's
  verdict, the algorithm (model id, bundle fingerprint, operating point) and "AI triage result, not for
  diagnosis", referencing the source instance (IHE AI Results);
- for an urgent study, a secondary capture of the heatmap over the film with the same disclaimer burned in.

Both go into new series of the source's study. Their UIDs derive from the source instance and the model's
fingerprint, so the same study scored again by the same model gives the same objects (a resend replaces, it
does not duplicate, in the PACS)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from cxr_desktop.core.heatmap_overlay import overlay
from cxr_desktop.core.preprocess import to_uint8
from cxr_desktop.studies.dicom import dicom_info, read_identified
from cxr_desktop.studies.study import StudyError, StudyInfo, same_identity
from cxr_desktop.worklist.rows import CHECK, DONE, URGENT, Row

DISCLAIMER = "AI triage result, not for diagnosis"
MANUFACTURER = "cxr-triage"
SCHEME = "99CXRTRIAGE"  # a private coding scheme (PS3.16: 99 prefix) for what no standard code names
SR_SERIES_NUMBER, SC_SERIES_NUMBER = 9901, 9902

CARDIOMEGALY = hd.sr.CodedConcept("8186001", "SCT", "Cardiomegaly")
PRESENT = hd.sr.CodedConcept("52101004", "SCT", "Present")
ABSENT = hd.sr.CodedConcept("2667000", "SCT", "Absent")
CHEST_XRAY = hd.sr.CodedConcept("399208008", "SCT", "Plain chest X-ray")
NO_UNITS = hd.sr.CodedConcept("1", "UCUM", "no units")
# patient and study attributes the results copy from the source: empty where a (non-conformant) source lacks them
TYPE2_STUDY_KEYWORDS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)
FINDING_CODES = {"Cardiomegaly": CARDIOMEGALY}


def _private(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value, SCHEME, meaning)


SCORE = _private("SCORE", "AI triage score (ranking, not a probability)")
THRESHOLD = _private("THRESHOLD", "Decision threshold")
PRIORITY = _private("PRIORITY", "Triage priority")
PRIORITIES = {
    URGENT: _private("URGENT", "Urgent"),
    CHECK: _private("CHECK", "Check: above threshold, input doubtful"),
    "routine": _private("ROUTINE", "Routine"),
}
INPUT_CHECK = _private("INPUTCHECK", "Input image check")
RESULT_USE = _private("RESULTUSE", "Result use")
NOT_FOR_DIAGNOSIS = _private("NOTFORDX", DISCLAIMER)


class ResultError(ValueError):
    """The study cannot have DICOM results (not a DICOM instance, not scored, no finding code)."""


@dataclass(frozen=True)
class ModelFacts:
    """What the results say about the model and the policy that flagged the study."""

    model_id: str
    fingerprint: str
    finding: str
    threshold: float
    operating_point: str


def result_uid(source_uid: str, fingerprint: str, kind: str) -> str:
    return generate_uid(entropy_srcs=[source_uid, fingerprint, kind])


def read_source(path: Path, scored: StudyInfo) -> Dataset:
    """The source instance's header (pixels are read by the session), from one read of the file that also
    gives its identity; ``ResultError`` when the file no longer holds the study that was scored (``scored``):
    a file replaced after scoring must not lend its patient, study or UIDs to another patient's result."""
    try:
        ds, key = read_identified(path, with_pixels=False)
    except StudyError as exc:
        raise ResultError(f"{path.name}: the source cannot be read again ({exc.reason})") from None
    if not same_identity(dicom_info(path, ds, key), scored):
        raise ResultError(f"{path.name}: the file now holds another study than the one scored; no results made")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        if not str(ds.get(keyword, "")).strip():
            raise ResultError(f"{path.name}: the source instance has no {keyword}")
    for keyword in TYPE2_STUDY_KEYWORDS:  # type 2 (may be empty, never absent) in the results' modules
        if keyword not in ds:
            setattr(ds, keyword, "")
    _normalise_age(ds)
    return ds


def _normalise_age(ds: Dataset) -> None:
    """Patient's Age as its VR wants it (nnnD/W/M/Y): a bare number of years, as some sources write it, becomes
    "062Y"; anything else unreadable is left out of the results (it is optional there)."""
    age = str(ds.get("PatientAge", "") or "").strip()
    if not age or re.fullmatch(r"\d{3}[DWMY]", age):
        return
    if re.fullmatch(r"\d{1,3}", age):
        ds.PatientAge = f"{int(age):03d}Y"
    else:
        del ds.PatientAge


def verdict_code(quality: str) -> hd.sr.CodedConcept:
    """The input check's verdict as a code: "ok", "not checked", or the guard's reason as the meaning."""
    if quality in ("", "unchecked"):
        return _private("UNCHECKED", "Not checked (the model has no input check)")
    if quality == "ok":
        return _private("OK", "Passed")
    code = re.sub(r"[^A-Z0-9]", "", quality.upper())[:16] or "DOUBT"
    return _private(code, quality[:64])


def measurement_group(row: Row, source: Dataset, facts: ModelFacts) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    finding = FINDING_CODES.get(facts.finding)
    if finding is None:
        raise ResultError(f"no SNOMED CT code known for finding {facts.finding!r}")
    score = row.probabilities.get(facts.finding)
    if score is None or not np.isfinite(score):
        raise ResultError(f"{row.path.name}: no score for {facts.finding}")
    algorithm = hd.sr.AlgorithmIdentification(
        name=f"{MANUFACTURER} {facts.model_id}",
        version=facts.fingerprint or "unknown",
        parameters=[f"operating point {facts.operating_point}", f"threshold {facts.threshold:.6f}"],
    )
    evaluations = [
        hd.sr.QualitativeEvaluation(finding, PRESENT if score >= facts.threshold else ABSENT),
        hd.sr.QualitativeEvaluation(PRIORITY, PRIORITIES.get(row.priority, PRIORITIES["routine"])),
        hd.sr.QualitativeEvaluation(INPUT_CHECK, verdict_code(row.quality)),
        hd.sr.QualitativeEvaluation(RESULT_USE, NOT_FOR_DIAGNOSIS),
    ]
    measurements = [
        hd.sr.Measurement(name=SCORE, value=float(score), unit=NO_UNITS, algorithm_id=algorithm),
        hd.sr.Measurement(name=THRESHOLD, value=float(facts.threshold), unit=NO_UNITS),
    ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=result_uid(source.SOPInstanceUID, facts.fingerprint, "tracking"), identifier=f"{facts.finding} triage"
        ),
        finding_type=finding,
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=evaluations,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
    )


def structured_report(row: Row, source: Dataset, facts: ModelFacts) -> hd.sr.ComprehensiveSR:
    """The TID 1500 report of one scored study, in a new series of its study."""
    if row.status != DONE:
        raise ResultError(f"{row.path.name}: not scored ({row.error or row.status})")
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=result_uid(facts.model_id, facts.fingerprint, "device"),
        name=f"{MANUFACTURER} {facts.model_id}"[:64],
        manufacturer_name=MANUFACTURER,
        model_name=facts.model_id[:64],
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=CHEST_XRAY,
        imaging_measurements=[measurement_group(row, source, facts)],
    )
    with _names_as_given():
        return hd.sr.ComprehensiveSR(
            evidence=[source],
            content=report[0],
            series_instance_uid=result_uid(source.StudyInstanceUID, facts.fingerprint, "sr-series"),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=result_uid(source.SOPInstanceUID, facts.fingerprint, "sr"),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            series_description=DISCLAIMER,
        )


@contextmanager
def _names_as_given() -> Iterator[None]:
    """highdicom warns about a one-component patient name ("Anonymized"); it is the source's, copied as it is."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The string .* is unlikely to represent the intended person name")
        yield


def burn_in(rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """``lines`` written in white on a black band across the top of the image (scaled to its width)."""
    image = np.ascontiguousarray(rgb.copy())
    scale = max(image.shape[1] / 1400.0, 0.35)
    thickness = max(int(round(scale * 2)), 1)
    step = int(34 * scale) + 6
    cv2.rectangle(image, (0, 0), (image.shape[1], step * len(lines) + 8), (0, 0, 0), thickness=-1)
    for index, line in enumerate(lines):
        origin = (8, step * (index + 1))
        cv2.putText(image, line, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return image


def heatmap_capture(
    row: Row, source: Dataset, image: np.ndarray, heatmap: np.ndarray, facts: ModelFacts
) -> hd.sc.SCImage:
    """The heatmap over the film, the disclaimer burned in, as a secondary capture in a new series."""
    score = row.probabilities.get(facts.finding, float("nan"))
    verdict = f"{facts.finding} score {score:.2f} (flag at >= {facts.threshold:.2f}) - {row.priority}"
    lines = [DISCLAIMER.upper(), verdict]
    rgb = burn_in(overlay(to_uint8(image), heatmap), lines)
    with _names_as_given():
        capture = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source,
            pixel_array=rgb,
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=result_uid(source.StudyInstanceUID, facts.fingerprint, "sc-series"),
            series_number=SC_SERIES_NUMBER,
            sop_instance_uid=result_uid(source.SOPInstanceUID, facts.fingerprint, "sc"),
            instance_number=1,
            manufacturer=MANUFACTURER,
            patient_orientation=patient_orientation(source),
            series_description=f"Heatmap - {DISCLAIMER}",
        )
    capture.Laterality = None  # type 2C: empty, a chest is not a paired body part
    capture.BurnedInAnnotation = "YES"
    capture.ImageComments = DISCLAIMER
    return capture


def patient_orientation(source: Dataset) -> tuple[str, str]:
    """The source's Patient Orientation, else that of a chest film shown as usual (rows to the patient's left,
    columns to the feet)."""
    value = source.get("PatientOrientation")
    if value is not None and not isinstance(value, str) and len(value) == 2 and all(value):
        return str(value[0]), str(value[1])
    return "L", "F"


def result_name(ds: Dataset) -> str:
    """``SR_<uid>.dcm`` or ``SC_<uid>.dcm``."""
    kind = "SR" if ds.get("Modality") == "SR" else "SC"
    return f"{kind}_{ds.SOPInstanceUID}.dcm"
