#!/usr/bin/env bash
# Issue 21 point 3, after tuned_classify_h200.sh run c (classify_batch at 43,795 evals/s compiled, 45,291 with CUDA
# graphs, 47,990 with tuned pointwise kernels; bare compiled 46,132): classify_batch with both (exhaustive 100 trials
# x 10 classes, 256 images a call, four calls overlapped, batch 4,096, the trained Fashion-MNIST UNet), the bare
# network eager and compiled timed 5 s each for the ratios (the session's last device time), with the clock log.
# Run at 02dc4a0 (data/results/speed/graphs_tuned_h200_*, 267 s): bare eager 17,154, compiled 46,515 evals/s;
# classify_batch with CUDA graphs and tuned pointwise kernels 50,800 evals/s (109 % of the bare compiled network),
# the same predictions as eager on the 32 images compared. It ran as its own copy of tuned_classify_h200.sh's
# command; it is now that script with these settings.
# Sent with `trim_tree.sh hide A`, carrying .whl and data/lab/fashion_mnist-test.npz.
# Usage: bash data/jobs/graphs_tuned_h200.sh OUTDIR
VARIANTS="compiled+graphs, tuned pointwise" ROW_SECONDS=5 NAME=graphs_tuned exec bash data/jobs/tuned_classify_h200.sh "$@"
