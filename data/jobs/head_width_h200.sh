#!/usr/bin/env bash
# Issue 21 point 3, after attention_backends_h200.sh: the bare compiled network is the limit (46-47k evals/s on
# the H200, under the 50k target). Is there a faster network of the same FLOPs?
#  1. the Fashion-MNIST UNet's architecture with attention heads 8 wide (as trained: 16 heads), 16, 32 and 64 wide;
#  2. at width 8, engine.optimise's other options: CUDA graphs, frozen weights, tuned pointwise kernels.
# Random weights (speed only; the FLOPs are the same), batch 4,096, each process beside its own same-run matmul.
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: bash data/jobs/head_width_h200.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks.csv
timeout 270 python3 -m dcanalysis.bench.versus_official --datasets fashion_mnist --throughput-only --skip-ceiling \
  --throughput-batches 4096 --throughput-variants --head-widths 8 16 32 64 --out $OUT/head_widths.json 2>&1 \
  | grep -v "$LOG_NOISE" | tee $OUT/run.log
timeout $((580 - SECONDS)) python3 -m dcanalysis.bench.versus_official --datasets fashion_mnist --throughput-only \
  --skip-ceiling --throughput-batches 4096 --throughput-variants --head-widths 8 \
  --bare-variants compiled+graphs "compiled, frozen" "compiled, tuned pointwise" --out $OUT/engine_options.json 2>&1 \
  | grep -v "$LOG_NOISE" | tee -a $OUT/run.log
stop_clock_log
