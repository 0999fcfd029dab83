#!/usr/bin/env bash
# The external NIH validation protocol for a cardiomegaly candidate (docs/experiments/default-model.md):
#   1. export the run with its operating thresholds (default point: sensitivity 0.95) chosen on the *tune* half of the real NIH images
#      (nih14-sample + nih14-extra, split by patient, fixed seed);
#   2. report on the *report* half (thresholds never saw it) and record it in the card;
#   3. AUROC on all 1,113 external images (model choice; no threshold involved) -> validated_findings;
#   4. the local test split, for comparison with earlier reports.
# Usage: scripts/external_protocol.sh RUN_DIR BUNDLE_DIR [MODEL_ID]
set -euo pipefail
run=$1 bundle=$2 model_id=${3:-$(basename "$1")}
data=${CXR_SHARED_DATA:-../shared/data}
images=("$data/nih14-sample/images" "$data/nih14-extra/images")
labels=$data/Data_Entry_2017_v2020.csv.gz
train=${CXR_TRAIN:-.venv/bin/cxr-train}
out=${EVAL_OUT:-eval/$model_id}
"$train" export "$run" --out "$bundle" --model-id "$model_id" --target-sensitivity "${TARGET_SENSITIVITY:-0.95}" \
    --threshold-images "${images[@]}" --threshold-labels "$labels"
"$train" evaluate --model "$bundle" --images "${images[@]}" --labels "$labels" --half report \
    --out "$out/nih-report-half" --record-as nih-external-report-half
"$train" evaluate --model "$bundle" --images "${images[@]}" --labels "$labels" \
    --out "$out/nih-all" --record-as nih-external-all --validate
[[ -n "${SKIP_LOCAL_TEST:-}" ]] || "$train" evaluate --model "$bundle" --split test --out "$out/local-test" --record-as local-test
