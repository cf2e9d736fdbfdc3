#!/usr/bin/env bash
# The speed benchmark on one H100 (random weights; speed only). Usage: bash data/jobs/bench_h100.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
timeout 540 python3 -m dcanalysis.bench --batch 64 --share-prefix --out $OUT/bench_h100.json 2>&1 | grep -v "should be kept in float32" | tee $OUT/bench.log
