#!/usr/bin/env bash
# Issue 21 point 3, after head_width_h200.sh, where inductor's coordinate-descent tuning of its own kernels
# (engine.optimise(tune_pointwise=True)) took the bare compiled forward past 50k evals/s: classify_batch on the
# trained Fashion-MNIST UNet compiled so (exhaustive 100 trials x 10 classes, 256 images a call, batch 4,096), with
# its kernel profile and its agreement with eager classification on 32 images, and the bare tuned forward of the
# same architecture (random weights) in the same process; classify_batch's calls one after another and overlapped
# (classify_stream, as in overlap_h200.sh, which has the default compile's rows).
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: bash data/jobs/tuned_pointwise_h200.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks.csv
timeout $((585 - SECONDS)) python3 -m dcanalysis.speed.versus_official --datasets fashion_mnist --throughput-only \
  --skip-ceiling --throughput-batches 4096 --throughput-variants "compiled, tuned pointwise" \
  --head-widths 8 --bare-variants "compiled, tuned pointwise" --out $OUT/tuned_pointwise.json 2>&1 \
  | grep -v "$LOG_NOISE" | tee $OUT/run.log
stop_clock_log
