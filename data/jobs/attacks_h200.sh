#!/usr/bin/env bash
# Issue 40, attacks: L-infinity PGD (margin loss, 20 steps, step eps/4, random start) on the first 100 test images of
# each lab dataset against the Diffusion Classifier (EOT: 4 fresh (t, eps) draws per class a step; scored exhaustive,
# 100 even trials) and the CNN / ResNet / ViT, with the ResNet's images as a transfer attack, budgets 0.03, 0.1,
# 0.3 and 1 of the [0, 1] pixel range, 40 steps at 0.1 as a check (python -m dcanalysis.lab.attack_eval).
# Resumable: the same command again finishes what a cut-short one left. Sent with `trim_tree.sh hide D`, carrying .whl
# and data/lab/{mnist,fashion_mnist}-test.npz.
# (Its log came back empty from the first run: tqdm's carriage returns joined every line into one that the
# noise filter dropped; the results files hold every number.) Usage: [END_S=330] bash data/jobs/attacks_h200.sh OUTDIR TAG [DATASETS...]
set -u
OUT=${1:?output dir}; TAG=${2:?tag}; shift 2
source data/jobs/gpu_env.sh
for DATASET in ${@:-mnist fashion_mnist}; do
  left=$((${END_S:-330} - SECONDS)); [ $left -gt 20 ] || break
  timeout $left python3 -m dcanalysis.lab.attack_eval --dataset $DATASET --out $OUT --n-images 100 \
    --eps 0.03 0.1 0.3 1.0 --steps 20 --eot 4 --trials 100 --attack-batch 100 2>&1 \
    | tr "\r" "\n" | grep -v "$LOG_NOISE" | tee -a $OUT/attacks_$TAG.log
done
