#!/usr/bin/env bash
# Issue 21 point 3: where the last ~5 % of a classify_batch call goes. overlap_h200.sh and tuned_pointwise_h200.sh
# found the GPU idle about 5 % of each call whether or not the host work between calls overlaps the GPU, at the
# bare network's clock; this profiles two 256-image calls (compiled Fashion-MNIST UNet, batch 4,096) and names the
# host operation running in each idle gap of the device timeline (dcanalysis.bench.idle_gaps).
# Run at ceee004 with tuned_classify_h200.sh in one command (data/results/speed/idle_gaps_h200_*): two calls 11.56 s
# unprofiled; profiled, the device timeline spans 11.41 s with 0.240 s idle (2.1 %) in 962 gaps of 20 us or more:
# 143.8 ms in 541 gaps while no host operation ran, 92.8 ms in 374 gaps during aten::normal_ (the caller's thread
# drawing the next call's noise plans), the rest under 2 ms. Run b, at 945f4cc after tuned_classify_h200.sh
# (data/results/speed/idle_gaps_h200_b_*; classify_stream stacks plans and builds results on the caller's thread):
# two calls 11.64 s unprofiled; 0.228 s idle of 11.47 s (2.0 %), 119.5 ms with no host operation running, 62.9 ms in
# 3 gaps during aten::randn, 31.6 ms during aten::normal_.
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: bash data/jobs/idle_gaps_h200.sh OUTDIR
set -u
OUT=${1:?output dir}
mkdir -p $OUT
source data/jobs/gpu_env.sh
timeout $((${LIMIT:-585} - SECONDS)) python3 -m dcanalysis.bench.idle_gaps --out $OUT/idle_gaps.json 2>&1 \
  | grep -v "$LOG_NOISE" | tee $OUT/run.log
