#!/usr/bin/env bash
# The official algorithm against dcanalysis's fastest configuration on the lab models, on one H200 (issues: speed
# against the peer; issue 41: the peer at its best batch, the sequential test refilled): accuracy with intervals,
# evaluations and wall time per image, same test images; with --throughput also the bare network against
# classify_batch. One dataset per command fits the device's 10 minutes (about 6 minutes each). Sent with `trim_tree.sh hide A`, carrying .whl and
# data/lab/{mnist,fashion_mnist}-test.npz.
# Usage: bash data/jobs/versus_official_h200.sh OUTDIR TAG [versus_official options...]
set -u
OUT=${1:?output dir}; TAG=${2:?tag}; shift 2
source data/jobs/gpu_env.sh
start_clock_log $OUT/versus_official_h200_${TAG}_gpu_clocks.csv
timeout ${TIMEOUT:-560} python3 -m dcanalysis.bench.versus_official "$@" --out $OUT/versus_official_h200_$TAG.json 2>&1 \
  | grep -v "should be kept in float32" | tee $OUT/versus_official_h200_$TAG.log
stop_clock_log
