#!/usr/bin/env bash
# Why the compiled 512 px UNet stops at about 55 % of the matmul (issue 5), on one H100, random weights: each SDPA
# backend alone at the UNet's three attention shapes; then the UNet at batch 64 eager and compiled, each of the
# compiled engine's choices (fused QKV, 1x1 convolutions as matmuls, CUDA graphs) taken back in turn, every
# variant profiled: kernel time per group (attention / convolutions and linears / the rest) and its longest
# kernels; the GPU's clock and power sampled beside it (gpu_clocks.csv). Four compiles.
# Usage: [RUNS=37] [TIMEOUT=570] bash data/jobs/bench_probe_h100.sh OUT [VARIANT ...]
# (RUNS: consecutive copies of each noisy sample in a batch, as the classifier sends them; 37 = Pets stage 1)
set -u
OUT=${1:?output dir}; shift
source data/jobs/gpu_env.sh
VARIANTS=("$@")
[ ${#VARIANTS[@]} -eq 0 ] && VARIANTS=("eager" "eager, fused qkv" "compiled" "compiled, 1x1 as conv" "compiled, unfused qkv")
start_clock_log $OUT/gpu_clocks.csv
timeout ${TIMEOUT:-570} python3 -m dcanalysis.bench.bench --probe --batch 64 --runs ${RUNS:-1} --seconds 3 --variants "${VARIANTS[@]}" --out $OUT/bench_probe_h100.json 2>&1 \
  | grep -v "should be kept in float32\|USDT\|UserWarning\|warn_once\|lru_cache\|This call originates\|upsampling.py\|is_torch_version\|^$" \
  | tee $OUT/bench_probe.log
stop_clock_log
