#!/usr/bin/env bash
# Issue 41 and issue 39's ablation in one GPU command per lab dataset (each about 8 minutes on an H200):
#  1. the paper's appendix ablation of the error function: l2, l1 and huber, exhaustive (100 even trials x 10
#     classes), on the first 1,000 test images, each under the same noise plans, compiled (its chapter is still to be written);
#  2. the official algorithm at its default batch and at one call per stage against the refilled sequential test
#     (python -m dcanalysis.bench.versus_official; chapters 5 and 10, README).
# Sent with `bash data/jobs/trim_tree.sh hide A`, carrying .whl and data/lab/{mnist,fashion_mnist}-test.npz.
# Usage: [END_S=585] bash data/jobs/speed_and_errors_h200.sh OUTDIR DATASET TAG
set -u
OUT=${1:?output dir}; DATASET=${2:?fashion_mnist or mnist}; TAG=${3:?tag}
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks_$TAG.csv
timeout ${ERRORS_S:-200} python3 -m dcanalysis.lab.evaluate --dataset $DATASET --out $OUT/runs --phases errors \
  --errors l2 l1 huber --n-strategy 1000 --trials 100 --compile --images-per-batch 256 --batch-size 4000 \
  --no-baselines 2>&1 | grep -v "$LOG_NOISE" | tail -40 > $OUT/errors_$TAG.log
python3 -c "
import pathlib
from dcanalysis.evaluation.runs import consolidate_tables
for d in sorted(pathlib.Path('$OUT/runs').glob('*_error_*')):
    consolidate_tables(d)
" >> $OUT/errors_$TAG.log 2>&1
(cd $OUT/runs && tar czf $OUT/errors_$TAG.tgz --exclude='errors-rank*' ${DATASET}_error_* ${DATASET}_summary.json)
rm -rf $OUT/runs
timeout $((${END_S:-585} - SECONDS)) python3 -m dcanalysis.bench.versus_official --datasets $DATASET \
  --peer-seconds ${PEER_S:-30} --padded-sizes 3 --out $OUT/versus_official_h200_$TAG.json 2>&1 \
  | grep -v "$LOG_NOISE" | tee $OUT/versus_official_h200_$TAG.log
stop_clock_log
