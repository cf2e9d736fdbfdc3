#!/usr/bin/env bash
# Both issue-40 GPU jobs in one command, side by side (small models leave the GPU idle; a device command is
# precious): shortcuts_h200.sh in front, attacks_h200.sh (MNIST, then Fashion-MNIST, resumable) beside it once the
# wheels are installed. Sent with `trim_tree.sh hide D`, carrying .whl and data/lab/{mnist.npz,mnist-test.npz,
# fashion_mnist-test.npz}. Usage: bash data/jobs/shortcuts_and_attacks_h200.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
TRAIN_LIMIT=${TRAIN_LIMIT:-270} bash data/jobs/shortcuts_h200.sh $OUT &
FRONT=$!
END_S=${END_S:-575} bash data/jobs/attacks_h200.sh $OUT a mnist fashion_mnist > /dev/null 2>&1   # its own log: attacks_a.log
wait $FRONT
ls -la $OUT
