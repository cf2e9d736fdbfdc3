#!/usr/bin/env bash
# Issue 21 point 3, the attention finding: the Fashion-MNIST UNet's heads are 8 wide, and chapter 10's profile of
# classify_batch shows the fused attention kernel taking a quarter of the kernel time for a few % of the FLOPs.
# For each SDPA backend (PyTorch's choice first, then memory-efficient, flash and the plain math), in its own
# process: the bare forward compiled, and classify_batch compiled (exhaustive 100 trials x 10 classes, 256 images
# a call, batch 4,096) with its kernel profile and its agreement with eager classification on 32 images; before
# them, self-attention alone at the UNet's two attention shapes (16x16 and 8x8 latents, 16 heads of width 8).
# A pinned backend compiles without inductor's graph cache (engine.optimise): the cache ignores the backend, and
# a first version of this job got the default run's cuDNN kernel back in every process.
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: bash data/jobs/attention_backends_h200.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks.csv
python3 -m dcanalysis.engine.attention --shapes 4096x16x256x8 4096x16x64x8 --out $OUT/attention_alone.json 2>&1 \
  | grep -v "$LOG_NOISE" | tee $OUT/run.log
for backend in default efficient flash math; do
  timeout $((585 - SECONDS)) python3 -m dcanalysis.bench.versus_official --datasets fashion_mnist --throughput-only \
    --skip-ceiling --throughput-batches 4096 --throughput-variants compiled --throughput-attention $backend \
    --out $OUT/attention_$backend.json 2>&1 | grep -v "$LOG_NOISE" | tee -a $OUT/run.log
done
stop_clock_log
