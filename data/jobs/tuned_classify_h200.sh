#!/usr/bin/env bash
# Issue 21 point 3, after tuned_pointwise_h200.sh, whose classify_batch with tuned pointwise kernels met the
# 10-minute limit (its compilation came after the bare network's): here classify_batch runs with CUDA graphs and
# with tuned pointwise kernels, and the bare network only eager and compiled (the rows the ratios are to), every row
# timed at least 15 s (exhaustive 100 trials x 10 classes, 256 images a call, four calls overlapped, batch 4,096,
# the trained Fashion-MNIST UNet), with the GPU's clock log. Rows are saved as they come.
# Run a, at ceee004 after idle_gaps_h200.sh in one command (data/results/speed/tuned_classify_h200_a_*): bare eager
# 17,258, compiled 46,210 evals/s; then classify_batch with CUDA graphs failed on its first call (an AssertionError in
# inductor's cudagraph_trees: the worker thread of classify_stream lacked the per-thread CUDA-graph tree managers;
# overlap.py now hands them over) and the tuned variant, queued after it, never ran. Run b: after classify_stream moved
# the stacking of noise plans and the building of results to the caller's thread, the default compiled variant first,
# then tuned pointwise kernels, then CUDA graphs. Run b, at 945f4cc before idle_gaps_h200.sh in one command
# (data/results/speed/tuned_classify_h200_b_*): bare eager 17,255, compiled 45,811 evals/s; then the process died
# without a traceback during the eager reference classification, the first classify_stream call after inductor had
# been used on the main thread: its worker had stashed the caller's CUDA-graph trees in PyTorch's C++ thread-local
# store. overlap.py now sets them as inductor's thread-local Python attributes instead. Run c, at d4805fe
# (data/results/speed/tuned_classify_h200_c_*, 500 s): bare eager 17,149, compiled 46,132; classify_batch compiled
# 43,795 (kernels 5.59 s of 5.85 s a call), tuned pointwise 47,990 (kernels 5.01 s of 5.33 s), CUDA graphs 45,291;
# every variant's predictions the same as eager's on the 32 images compared.
# LIMIT: the seconds this script may use (default 585; less when it follows another job in one command).
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: bash data/jobs/tuned_classify_h200.sh OUTDIR
set -u
OUT=${1:?output dir}
mkdir -p $OUT
source data/jobs/gpu_env.sh
start_clock_log $OUT/gpu_clocks.csv
# VARIANTS (names separated by ';'), ROW_SECONDS and NAME: what graphs_tuned_h200.sh changes
IFS=';' read -ra variants <<< "${VARIANTS:-compiled;compiled, tuned pointwise;compiled+graphs}"
timeout $((${LIMIT:-585} - SECONDS)) python3 -m dcanalysis.bench.versus_official --datasets fashion_mnist \
  --throughput-only --skip-ceiling --seconds ${ROW_SECONDS:-15} --throughput-batches 4096 --overlapped-only \
  --throughput-variants "${variants[@]}" --bare-variants compiled \
  --out $OUT/${NAME:-tuned_classify}.json 2>&1 | grep -v "$LOG_NOISE" | tee $OUT/run.log
stop_clock_log
