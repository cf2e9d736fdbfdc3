#!/usr/bin/env bash
# The speed benchmark on one H100 (random weights; speed only). The reference matmul and every model are timed
# for at least 3 s each (the card's sustained rate, not a burst); the GPU's SM clock, power and temperature are
# sampled every 200 ms beside it (gpu_clocks.csv; rows carry timed_from/timed_to to line them up).
# Usage: bash data/jobs/bench_h100.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks.csv
timeout 560 python3 -m dcanalysis.bench.bench --batch 64 --seconds 3 --share-prefix --out $OUT/bench_h100.json 2>&1 \
  | grep -v "should be kept in float32\|UserWarning\|warn_once\|lru_cache\|This call originates\|upsampling.py\|is_torch_version\|^$" \
  | tee $OUT/bench.log
stop_clock_log
