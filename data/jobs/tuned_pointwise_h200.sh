#!/usr/bin/env bash
# Issue 21 point 3, after head_width_h200.sh (inductor's coordinate-descent tuning of its own kernels,
# engine.optimise(tune_pointwise=True), took the bare compiled forward past 50k evals/s in a 2 s window) and
# overlap_h200.sh (classify_batch at 93 % of the bare network whether or not each call's host work overlaps the
# GPU; the bare network timed 2.4 s near full clock, classify_batch 24 s under the power cap). Here every row is
# timed at least 15 s, so all of them run at the clocks of sustained work: the trained Fashion-MNIST UNet bare
# (eager, compiled, compiled with tuned pointwise kernels) and classify_batch compiled both ways (exhaustive 100
# trials x 10 classes, 256 images a call, four calls overlapped, batch 4,096), each with its kernel profile and its
# agreement with eager classification, and the GPU's clock log to line each row up with. Rows are saved as they come.
# Run at 265dd13 (data/results/speed/tuned_pointwise_h200_*, 585 s, cut by the 10-minute limit): bare eager 17,112,
# compiled 46,636, compiled with tuned pointwise kernels 51,544 evals/s (first call 187.6 s); classify_batch compiled
# 44,075 (94.5 % of the bare network, kernels 5.51 s of 5.81 s wall per call), SM clock 1,962 and 1,963 MHz in the two
# windows. classify_batch with tuned kernels did not run: its own compilation met the time limit.
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: bash data/jobs/tuned_pointwise_h200.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks.csv
timeout $((585 - SECONDS)) python3 -m dcanalysis.bench.versus_official --datasets fashion_mnist --throughput-only \
  --skip-ceiling --seconds 15 --throughput-batches 4096 --overlapped-only \
  --throughput-variants compiled "compiled, tuned pointwise" --bare-variants compiled "compiled, tuned pointwise" \
  --out $OUT/tuned_pointwise.json 2>&1 | grep -v "$LOG_NOISE" | tee $OUT/run.log
stop_clock_log
