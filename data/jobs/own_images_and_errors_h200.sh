#!/usr/bin/env bash
# Two lab runs in one GPU command per dataset (each command about 8 minutes on an H100 or H200):
#  1. issue 39, the paper's appendix ablation of the error function: l2, l1 and huber, exhaustive (100 even trials x
#     10 classes), on the first 1,000 test images, each under the same noise plans, compiled (chapter 13);
#  2. issue 40, the model's own images: 100 samples per class from each of DDIM 10 and 50 steps and DDPM 100 and
#     1,000 steps, classified by the Diffusion Classifier (exhaustive, as chapter 9's test run) and the baselines
#     (python -m dcanalysis.lab.own_images; chapter 14).
# Both are resumable: a command cut short is finished by the same command again, on the results it sent back.
# Sent with `bash data/jobs/trim_tree.sh hide D`, carrying .whl and data/lab/{mnist,fashion_mnist}-test.npz.
# Usage: [END_S=585] bash data/jobs/own_images_and_errors_h200.sh OUTDIR DATASET TAG
set -u
OUT=${1:?output dir}; DATASET=${2:?fashion_mnist or mnist}; TAG=${3:?tag}
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks_$TAG.csv
timeout ${ERRORS_S:-240} python3 -m dcanalysis.lab.evaluate --dataset $DATASET --out $OUT/runs --phases errors \
  --errors l2 l1 huber --n-strategy 1000 --trials 100 --compile --images-per-batch 256 --batch-size 4000 \
  --no-baselines 2>&1 | grep -v "$LOG_NOISE" | tail -40 > $OUT/errors_$TAG.log
timeout $((${END_S:-585} - SECONDS)) python3 -m dcanalysis.lab.own_images --dataset $DATASET --out $OUT/own \
  --per-class 100 --trials 100 --compile --images-per-batch 32 --batch-size 4000 2>&1 \
  | grep -v "$LOG_NOISE" | tail -40 > $OUT/own_images_$TAG.log
python3 -c "
import pathlib
from dcanalysis.evaluation.runs import consolidate_tables
for d in sorted(pathlib.Path('$OUT/runs').glob('*_error_*')) + sorted(pathlib.Path('$OUT/own').glob('*_own_*')):
    if d.is_dir():
        consolidate_tables(d)
" >> $OUT/errors_$TAG.log 2>&1
(cd $OUT/runs && tar czf $OUT/errors_$TAG.tgz --exclude='errors-rank*' ${DATASET}_error_* ${DATASET}_summary.json)
(cd $OUT/own && tar czf $OUT/own_images_$TAG.tgz --exclude='errors-rank*' .)
rm -rf $OUT/runs $OUT/own
stop_clock_log
