#!/usr/bin/env bash
# Speed rows of today's model families on one H200 (random weights, full size: speed only, never accuracy): the
# SDXL base UNet, SD 3.5-medium and Flux.1-schnell at 1024 px, batch 8, eager and compiled, each against the
# same-run bf16 matmul, with parameter counts and peak memory. Sent with `trim_tree.sh hide A`, carrying .whl.
# Usage: bash data/jobs/bench_families_h200.sh OUTDIR TAG [FAMILY...]   (no families: all of speed.families)
set -u
OUT=${1:?output dir}; TAG=${2:?tag}; shift 2
source data/jobs/gpu_env.sh
start_clock_log $OUT/bench_families_h200_${TAG}_gpu_clocks.csv
timeout ${TIMEOUT:-540} python3 -m dcanalysis.bench.bench --families "$@" --family-batch 8 --seconds 3 \
  --out $OUT/bench_families_h200_$TAG.json 2>&1 | grep -v "should be kept in float32" | tee $OUT/bench_families_h200_$TAG.log
stop_clock_log
