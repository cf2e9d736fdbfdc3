#!/usr/bin/env bash
# Trains the scene lab's text-conditional UNet ("base", 7.2 M parameters) and its contrastive baseline on one
# H100 in one command (< 10 min); both read the committed caption bank, so the text encoder is not carried.
# Usage on the GPU machine: bash data/jobs/train_scenes.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
M=$OUT/models; mkdir -p $M
T="python3 -m dcanalysis.lab.train_scenes --workers 8 --pool-size 100000"
$T --model unet-base --steps 200000 --batch-size 256 --time-limit 450 --out $M/scenes_unet > $OUT/scenes_unet.log 2>&1 &
$T --model clip --steps 6000 --batch-size 256 --out $M/scenes_clip > $OUT/scenes_clip.log 2>&1
wait
tail -n 3 $OUT/*.log
tar czf $OUT/scenes_models.tgz --exclude=train_state.pt -C $M scenes_unet scenes_clip
ls -la $OUT
