#!/usr/bin/env bash
# Issue 21 point 3: the host's share of every classify_batch call (reading the next images, drawing their noise
# plans, handling the last results) done while the GPU runs the call before (DiffusionClassifier.classify_stream,
# dcanalysis.engine.overlap). Times classify_batch compiled on the trained Fashion-MNIST UNet (exhaustive 100 trials x 10
# classes, 256 images a call, four calls, batch 4,096) one call after another and overlapped, beside the bare
# compiled network, in one run, with its kernel profile and its agreement with eager classification.
# Run at 8c23cff (data/results/speed/overlap_h200_*, 197 s): bare compiled 45,608 evals/s (timed 2.4 s), classify_batch
# 42,643 one by one and 42,412 overlapped (24 s each, the clock log shows the power cap): overlapping gains nothing.
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: bash data/jobs/overlap_h200.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks.csv
timeout $((585 - SECONDS)) python3 -m dcanalysis.bench.versus_official --datasets fashion_mnist --throughput-only \
  --skip-ceiling --throughput-batches 4096 --throughput-variants compiled --out $OUT/overlap.json 2>&1 \
  | grep -v "$LOG_NOISE" | tee $OUT/run.log
stop_clock_log
