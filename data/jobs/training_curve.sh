#!/usr/bin/env bash
# Accuracy against training steps (issue 3: is the lab model undertrained?), in one H100 command: retrains the
# Fashion-MNIST UNet with the shipped model's config for a fixed time, exporting EMA snapshots along the way, then
# scores every snapshot, the run's last weights and the shipped model on the same first 500 test images
# (50 evenly spaced trials, one noise plan). Needs data/lab/fashion_mnist.npz and fashion_mnist-test.npz carried.
# Usage on the GPU machine: bash data/jobs/training_curve.sh OUTDIR [TRAIN_SECONDS] [EVAL_SECONDS]
set -u
OUT=${1:?output dir}
TRAIN_S=${2:-290}
EVAL_S=${3:-200}
source data/jobs/gpu_env.sh
R=/tmp/curve_run
python3 -m dcanalysis.lab.train --model unet-base --dataset fashion_mnist --steps 100000 --time-limit $TRAIN_S \
  --snapshots 125 250 500 1000 1500 2000 --out $R > $OUT/train.log 2>&1
tail -n 4 $OUT/train.log
python3 -m dcanalysis.lab.training_curve --train-dir $R --dataset fashion_mnist --out $OUT/curve --n-images 500 \
  --trials 50 --time-limit $EVAL_S --also $R data/models/fashion_mnist_unet 2>&1 | grep -v "it/s" | tee $OUT/curve.log
cp $R/model_card.json $OUT/last_model_card.json
tar czf $OUT/curve_runs.tgz -C $OUT curve && rm -rf $OUT/curve/*/
ls -la $OUT
