#!/usr/bin/env bash
# Generative against discriminative as labelled data grows (lab.labelled_data), on one H200: trains the lab UNets
# and the CNN / ResNet / ViT baselines on a class-balanced 1 % and 10 % of each training split with the shipped
# models' recipe and step counts (the 100 % models are the shipped ones), in parallel (small models leave the GPU
# idle), then evaluates every model on the first 1,000 test images and the shifted sets. Training resumes from
# its checkpoints if a command limit cuts it: run the same command again. Sent with `trim_tree.sh hide A`,
# carrying .whl and data/lab/{mnist,fashion_mnist}.npz (the training splits).
# Usage: bash data/jobs/labelled_data_h200.sh OUTDIR [MODELDIR]
set -u
OUT=${1:?output dir}; M=${2:-/tmp/labelled_models}
source data/jobs/gpu_env.sh
mkdir -p $M
T="python3 -m dcanalysis.lab.train"
steps() { python3 -c "import json; print(json.load(open('data/models/$1/model_card.json'))['steps'])"; }
for f in 0.01 0.1; do
  pct=$(python3 -c "print(f'{100 * $f:g}')")
  $T --model unet-base  --dataset fashion_mnist --steps $(steps fashion_mnist_unet) --train-fraction $f --out $M/fashion_mnist_unet_${pct}pct > $OUT/train_fashion_mnist_unet_$pct.log 2>&1 &
  $T --model unet-small --dataset mnist         --steps $(steps mnist_unet)         --train-fraction $f --out $M/mnist_unet_${pct}pct > $OUT/train_mnist_unet_$pct.log 2>&1 &
  for d in fashion_mnist mnist; do for a in cnn resnet vit; do
    $T --model $a --dataset $d --steps 4000 --lr $([ $a = vit ] && echo 5e-4 || echo 1e-3) --train-fraction $f \
      --out $M/${d}_${a}_${pct}pct > $OUT/train_${d}_${a}_$pct.log 2>&1 &
  done; done
done
wait
tail -qn 2 $OUT/train_*.log | grep -v "^$" | head -40
timeout ${TIMEOUT:-300} python3 -m dcanalysis.lab.labelled_data --models $M --compile --out $OUT/labelled_data_h200.json 2>&1 \
  | grep -v "should be kept in float32" | tail -20
cat $OUT/train_*.log > $OUT/labelled_data_train_logs.txt; rm $OUT/train_*.log
