#!/usr/bin/env bash
# Generative against discriminative as labelled data grows (lab.labelled_data), in one H200 command: trains the
# lab UNets and the CNN / ResNet / ViT baselines on a class-balanced 1 % and 10 % of each training split with the
# shipped models' recipe, all in parallel (small models leave the GPU idle), while the shipped 100 % models are
# evaluated; then evaluates the 1 % and 10 % models on the same test images and shifted sets.
# Step budgets: the baselines keep the shipped 4,000 steps. The UNets train for $UNET_STEPS (1,500): on the full
# split, data/results/lab/fashion_mnist_training_curve/curve.json has the retrained UNet at the shipped model's
# accuracy by 1,500 steps, and the shipped step counts (3,547 and 3,178, set by a time limit) do not fit one
# command four times over. Every model card records its steps; the chapter prints them.
# The full training splits are too large to send: prepare the 10 % share's caches (the 1 % share is nested in it;
# lab.data.save_labelled_share) with `python -m dcanalysis.evaluation.lab_datasets --share 0.1 --out data/lab_share`, then send
# with `trim_tree.sh hide D`, carrying .whl and data/lab_share.
# Usage: bash data/jobs/labelled_data_h200.sh OUTDIR [N_IMAGES]
set -u
OUT=${1:?output dir}; N=${2:-500}; M=/tmp/labelled_models; UNET_STEPS=${UNET_STEPS:-1500}
DATASETS=${DATASETS:-fashion_mnist mnist}   # one at a time fits a command better: DATASETS=mnist
source data/jobs/gpu_env.sh
mkdir -p data/lab && cp data/lab_share/*.npz data/lab/   # this machine's copy of the tree only
export OMP_NUM_THREADS=1
mkdir -p $M/logs   # logs stay here (the device returns at most 8 files) and are gathered into one
T="python3 -m dcanalysis.lab.train --time-limit ${TRAIN_LIMIT:-330}"
for f in 0.01 0.1; do
  pct=$(python3 -c "print(f'{100 * $f:g}')")
  for d in $DATASETS; do
    $T --model $([ $d = mnist ] && echo unet-small || echo unet-base) --dataset $d --steps $UNET_STEPS \
      --train-fraction $f --out $M/${d}_unet_${pct}pct > $M/logs/train_${d}_unet_$pct.log 2>&1 &
  done
  for d in $DATASETS; do for a in cnn resnet vit; do
    $T --model $a --dataset $d --steps 4000 --lr $([ $a = vit ] && echo 5e-4 || echo 1e-3) --train-fraction $f \
      --out $M/${d}_${a}_${pct}pct > $M/logs/train_${d}_${a}_$pct.log 2>&1 &
  done; done
done
R="python3 -m dcanalysis.lab.labelled_data --models $M --n-images $N --datasets $DATASETS --out $OUT/labelled_data_h200.json"
[ -z "${SKIP_FULL:-}" ] && $R --fractions 1 2>&1 | grep -v "should be kept in float32" | tail -3   # the shipped models, beside the training
# (SKIP_FULL=1: they are already in the result file sent along as data/lab_share/labelled_data_h200.json)
[ -n "${SKIP_FULL:-}" ] && cp data/lab_share/labelled_data_h200.json $OUT/
wait
for c in $M/*/model_card.json; do python3 -c "import json; c = json.load(open('$c')); print(c['name'], c['steps'], c['wall_time_s'])"; done
for f in $M/logs/*.log; do echo "== $f"; tr '\r' '\n' < $f | grep -v "it/s\]$"; done > $OUT/labelled_data_train_logs.txt
timeout $((585 - SECONDS)) $R --fractions 0.01 0.1 2>&1 | grep -v "should be kept in float32" | tail -3
