#!/usr/bin/env bash
# Issue 21 point 3: the last few per cent between classify_batch and the bare network. The profile of
# classify_batch left the GPU idle about 5 % of each call, perhaps while the host drew the next call's noise (CPU
# generators, 100 trials per image). plan_prefetch drew it on a host thread while the GPU works; this times
# classify_batch compiled (exhaustive 100 trials x 10 classes, 256 images a call, four calls, batch 4,096) on the
# trained Fashion-MNIST UNet with the plans drawn ahead and drawn in the call, beside the bare network, in one run.
# Run at commit 9fee822 (data/results/speed/plan_prefetch_h200_*): 42,888 evals/s with the plans drawn ahead,
# 43,319 without, the idle time per call unchanged (0.39 and 0.33 s of 5.9 s), so the prefetch was taken out again
# (the gap is not the noise). At later commits the variant 'plans drawn in the call' no longer exists.
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: bash data/jobs/plan_prefetch_h200.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks.csv
timeout $((585 - SECONDS)) python3 -m dcanalysis.bench.versus_official --datasets fashion_mnist --throughput-only \
  --skip-ceiling --throughput-batches 4096 --throughput-variants compiled "compiled, plans drawn in the call" \
  --out $OUT/plan_prefetch.json 2>&1 | grep -v "$LOG_NOISE" | tee $OUT/run.log
stop_clock_log
