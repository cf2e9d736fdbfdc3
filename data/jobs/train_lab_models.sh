#!/usr/bin/env bash
# Trains every lab model on one H100 in one command (< 10 min): the two diffusion UNets run beside the
# six discriminative baselines (small models leave the GPU underused, so they share it).
# Usage on the GPU machine: bash data/jobs/train_lab_models.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
M=$OUT/models; mkdir -p $M
T="python3 -m dcanalysis.lab.train"
$T --model unet-base  --dataset fashion_mnist --steps 100000 --time-limit 470 --out $M/fashion_mnist_unet > $OUT/fashion_mnist_unet.log 2>&1 &
$T --model unet-small --dataset mnist         --steps 100000 --time-limit 300 --out $M/mnist_unet > $OUT/mnist_unet.log 2>&1 &
for d in fashion_mnist mnist; do for a in cnn resnet vit; do
  $T --model $a --dataset $d --steps 4000 --lr $([ $a = vit ] && echo 5e-4 || echo 1e-3) --out $M/${d}_$a > $OUT/${d}_$a.log 2>&1
done; done
wait
tail -n 3 $OUT/*.log
# Ship the exported models (not the resumable train_state.pt) back in files under 16 MB each.
tar czf $OUT/fashion_mnist_unet.tgz --exclude=train_state.pt -C $M fashion_mnist_unet
tar czf $OUT/baselines.tgz --exclude=train_state.pt -C $M mnist_unet fashion_mnist_cnn fashion_mnist_resnet fashion_mnist_vit mnist_cnn mnist_resnet mnist_vit
cat $OUT/*.log > $OUT/train_logs.txt
ls -la $OUT
