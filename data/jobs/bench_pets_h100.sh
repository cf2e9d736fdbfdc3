#!/usr/bin/env bash
# Only the end-to-end Pets schedule (SD-2-base, 512 px, random weights), without and with the shared
# condition-independent prefix, on one H100 (the shared run compiles one graph per padded number of runs in a
# batch), the GPU's clock and power sampled beside it (gpu_clocks.csv).
# Usage: [TIMEOUT=570] bash data/jobs/bench_pets_h100.sh OUTDIR [MORE BENCH FLAGS, e.g. --images-per-call 4]
set -u
OUT=${1:?output dir}; shift
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks.csv
timeout ${TIMEOUT:-570} python3 -m dcanalysis.bench.bench --pets-only --share-prefix --batch 64 --seconds 3 --out $OUT/bench_pets_h100.json "$@" 2>&1 \
  | grep -v "should be kept in float32\|UserWarning\|warn_once\|lru_cache\|This call originates\|upsampling.py\|is_torch_version\|^$" \
  | tee $OUT/bench_pets.log
stop_clock_log
