#!/usr/bin/env bash
# Issue 40, shortcuts (python -m dcanalysis.lab.shortcuts): trains the lab UNet and the CNN / ResNet / ViT on the
# MNIST training split carrying lab.shortcut_data's class cue at each strength (0.1: no correlation; 0.95, 0.99),
# all in parallel (small models leave the GPU idle), with labelled_data_h200.sh's recipe: the baselines keep the
# shipped 4,000 steps, the UNets $UNET_STEPS (1,500), each under a time limit; every model card records the steps
# it had. Then each model classifies the first 500 test images shown twice (the class's slot, another slot).
# Sent with `trim_tree.sh hide D`, carrying .whl and data/lab/mnist.npz (the training split).
# Usage: bash data/jobs/shortcuts_h200.sh OUTDIR
set -u
OUT=${1:?output dir}; M=/tmp/shortcut_models; UNET_STEPS=${UNET_STEPS:-1500}; STRENGTHS=${STRENGTHS:-0.1 0.95 0.99}
source data/jobs/gpu_env.sh
export OMP_NUM_THREADS=1
mkdir -p $M/logs   # logs stay here (the device returns at most 8 files) and are gathered into one
T="python3 -m dcanalysis.lab.train --dataset mnist --time-limit ${TRAIN_LIMIT:-300}"
for s in $STRENGTHS; do
  $T --model unet-small --steps $UNET_STEPS --cue-strength $s --out $M/mnist_unet_cue$s > $M/logs/unet_$s.log 2>&1 &
  for a in cnn resnet vit; do
    $T --model $a --steps 4000 --lr $([ $a = vit ] && echo 5e-4 || echo 1e-3) --cue-strength $s \
      --out $M/mnist_${a}_cue$s > $M/logs/${a}_$s.log 2>&1 &
  done
done
wait
for c in $M/*/model_card.json; do python3 -c "import json; c = json.load(open('$c')); print(c['name'], c['steps'], c['wall_time_s'], c['final_loss'])"; done | tee $OUT/shortcuts_train.txt
for f in $M/logs/*.log; do echo "== $f"; tr '\r' '\n' < $f | grep -v "it/s\]$"; done >> $OUT/shortcuts_train.txt
timeout $((590 - SECONDS)) python3 -m dcanalysis.lab.shortcuts --dataset mnist --models $M --strengths $STRENGTHS \
  --n-images 500 --out $OUT 2>&1 | grep -v "$LOG_NOISE" | tee $OUT/shortcuts_eval.log
