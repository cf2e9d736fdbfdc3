#!/usr/bin/env bash
# Issue 21 point 3, after attention_backends_h200.sh: would the Fashion-MNIST UNet be faster with wider heads?
# The bare forward, compiled, of its architecture with attention heads 8 wide (as trained: 16 heads) and 32 wide
# (4 heads), random weights (speed only; the FLOPs are the same), batch 4,096, beside a same-run matmul.
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: bash data/jobs/head_width_h200.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
F="should be kept in float32\|UserWarning\|warn_once\|lru_cache\|This call originates\|upsampling.py\|is_torch_version\|it/s\]\|s/it\]\|^$"
timeout 240 python3 -m dcanalysis.speed.versus_official --datasets fashion_mnist --throughput-only --skip-ceiling \
  --throughput-batches 4096 --throughput-variants --head-widths 8 32 --out $OUT/head_widths.json 2>&1 \
  | grep -v "$F" | tee $OUT/run.log
