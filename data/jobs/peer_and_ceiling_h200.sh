#!/usr/bin/env bash
# Issue 21 points 1 and 3 in one H200 command:
#  1. the Pets schedule on SD-2-base at 512 px (random weights, speed only) beside the official loop re-stated
#     (bench --peer), plain and with the shared prefix, compiled from an empty inductor cache: every Pets row with
#     its ratio to the peer measured in the same run;
#  3. the Fashion-MNIST UNet at batches 4,096 and 8,000: the copy bandwidth and matmul rate, the roofline ceiling of
#     its operators (speed.roofline), the bare forward eager and compiled, and classify_batch compiled.
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: [SKIP_CEILING=1] bash data/jobs/peer_and_ceiling_h200.sh OUTDIR   (SKIP_CEILING=1: only the Pets step, which
# then has the whole command for its three compilations from an empty cache)
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_cache_$$   # empty at the start of this command
start_clock_log $OUT/gpu_clocks.csv
[ -z "${SKIP_CEILING:-}" ] && python3 -m dcanalysis.bench.versus_official --datasets fashion_mnist --throughput-only \
  --throughput-batches 4096 8000 --throughput-variants compiled --out $OUT/throughput_ceiling.json 2>&1 \
  | grep -v "$LOG_NOISE" | tee $OUT/run.log
timeout $((585 - SECONDS)) python3 -m dcanalysis.bench.bench --seconds 3 --pets-only --peer --share-prefix --batch 64 \
  --out $OUT/bench_pets_peer.json 2>&1 | grep -v "$LOG_NOISE" | tee -a $OUT/run.log
stop_clock_log
