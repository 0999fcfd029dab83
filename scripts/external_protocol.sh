#!/usr/bin/env bash
# The external NIH validation protocol for a cardiomegaly candidate (docs/experiments/default-model.md).
# The NIH images (nih14-sample + nih14-extra) are split into halves by a hash of the patient ID; every step
# leaves out the images that are copies of the run's own training images (the bundle's training signatures,
# cxr-train's leakage check) and records how many it found.
#   1. export the run; operating thresholds (default point: sensitivity 0.95) are chosen on the *tune* half from
#      the ONNX copy's scores (the app's), midway between neighbouring scores;
#   2. the tune half's AUROC, for choosing between candidates (no threshold involved);
#   with REPORT=1 only, for the one candidate chosen on the tune half (the report half is read once):
#   3. the *report* half, which no threshold and no choice saw, recorded in the card;
#   4. all images (validated_findings: AUROC lower 95 % bound >= 0.70);
#   5. the sensitivity analysis: 3 and 4 again without every image of the patients who have a film in the local
#      set (cxr-train overlap against LOCAL_DATA; a patient's other films may be there under other names);
#   6. the local test split, for comparison with earlier reports (unless SKIP_LOCAL_TEST is set).
# Usage: scripts/external_protocol.sh RUN_DIR BUNDLE_DIR [MODEL_ID]
set -euo pipefail
run=$1 bundle=$2 model_id=${3:-$(basename "$1")}
data=${CXR_SHARED_DATA:-../shared/data}
images=("$data/nih14-sample/images" "$data/nih14-extra/images")
labels=$data/Data_Entry_2017_v2020.csv.gz
local_data=${LOCAL_DATA:-$data/cardiomegaly-local}
train=${CXR_TRAIN:-.venv/bin/cxr-train}
out=${EVAL_OUT:-eval/$model_id}
nih=(--images "${images[@]}" --labels "$labels")

"$train" export "$run" --out "$bundle" --model-id "$model_id" --target-sensitivity "${TARGET_SENSITIVITY:-0.95}" \
    --threshold-images "${images[@]}" --threshold-labels "$labels"
"$train" evaluate --model "$bundle" "${nih[@]}" --half tune --out "$out/nih-tune-half"
[[ -n "${REPORT:-}" ]] || exit 0

"$train" evaluate --model "$bundle" "${nih[@]}" --half report --out "$out/nih-report-half" \
    --record-as nih-external-report-half
"$train" evaluate --model "$bundle" "${nih[@]}" --out "$out/nih-all" --record-as nih-external-all --validate
mkdir -p "$out"
[[ -f "$out/nih-films-in-local-set.csv" ]] ||
    "$train" overlap --reference "$local_data" --images "${images[@]}" --out "$out/nih-films-in-local-set.csv"
without=(--exclude-patients-of "$out/nih-films-in-local-set.csv")
"$train" evaluate --model "$bundle" "${nih[@]}" --half report "${without[@]}" \
    --out "$out/nih-report-half-without-copy-patients" --record-as nih-external-report-half-without-copy-patients
"$train" evaluate --model "$bundle" "${nih[@]}" "${without[@]}" \
    --out "$out/nih-all-without-copy-patients" --record-as nih-external-all-without-copy-patients
[[ -n "${SKIP_LOCAL_TEST:-}" ]] || "$train" evaluate --model "$bundle" --split test --out "$out/local-test" --record-as local-test
