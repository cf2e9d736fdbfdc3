#!/usr/bin/env bash
# Issue 5's next measurement on one H100 (random weights; speed only): the 512 px SD-2-base UNet at batch 64 and
# 128, eager / compiled / compiled with CUDA graphs, against a bf16 matmul timed in the same run. Four compiles of
# about 70 s each: one command. Usage: bash data/jobs/bench_sweep_h100.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
timeout 560 python3 -m dcanalysis.bench.bench --sweep --batches 64 128 --out $OUT/bench_sweep_h100.json 2>&1 \
  | grep -v "should be kept in float32" | tee $OUT/bench_sweep.log
