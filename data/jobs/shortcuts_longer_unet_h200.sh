#!/usr/bin/env bash
# A check on shortcuts_and_attacks_h200.sh: there the strength-0.99 UNet shared the GPU with eleven other models and
# had 1,027 steps in its 270 s. Here it trains alone, for up to $STEPS steps (time limit $LIMIT s), and is scored on
# the same conflict set. Sent like shortcuts_h200.sh. Usage: bash data/jobs/shortcuts_longer_unet_h200.sh OUTDIR
set -u
OUT=${1:?output dir}; M=/tmp/longer_unet; STEPS=${STEPS:-3000}; LIMIT=${LIMIT:-380}
source data/jobs/gpu_env.sh
python3 -m dcanalysis.lab.train --dataset mnist --model unet-small --steps $STEPS --time-limit $LIMIT \
  --cue-strength 0.99 --out $M/mnist_unet_cue0.99 2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | tail -25 > $OUT/longer_unet_train.log
mkdir -p $OUT/longer_unet
python3 -m dcanalysis.lab.shortcuts --dataset mnist --models $M --strengths 0.99 --n-images 500 \
  --out $OUT/longer_unet 2>&1 | grep -v "$LOG_NOISE" | tee $OUT/longer_unet_eval.log
