#!/usr/bin/env bash
# Trains the scene lab's models on one H100 and evaluates them, in one command (< 10 min):
# the text-conditional UNet ("base", 7.2 M parameters) for a fixed time, the contrastive baseline and its
# pooled-text ablation for fixed steps (concurrently), then the Winoground-style swaps (300 items per split) and
# 20-way zero-shot classification (10 images per (colour, shape)) with 100 evenly spaced trials.
# All read the committed caption bank, so the text encoder is not carried.
# Usage on the GPU machine: bash data/jobs/train_evaluate_scenes.sh OUTDIR [UNET_SECONDS] [TRAIN_SEED]
# TRAIN_SEED other than 0 makes a replicate for scene_eval.across_seeds: same items and noise plan (eval seed 0),
# other training seed; only its model cards and evaluation come back (the models are remade by the command).
set -u
OUT=${1:?output dir}
UNET_S=${2:-330}
S=${3:-0}
source data/jobs/gpu_env.sh
M=$OUT/models; mkdir -p $M/scenes_text
cp data/models/scenes_text/* $M/scenes_text/
T="python3 -m dcanalysis.lab.train_scenes --workers 5 --pool-size 100000 --seed $S"
$T --model unet-base --steps 200000 --batch-size 256 --time-limit $UNET_S --out $M/scenes_unet > $OUT/scenes_unet.log 2>&1 &
$T --model clip --steps 4000 --batch-size 256 --time-limit $UNET_S --out $M/scenes_clip > $OUT/scenes_clip.log 2>&1 &
$T --model clip-pooled --steps 4000 --batch-size 256 --time-limit $UNET_S --out $M/scenes_clip_pooled > $OUT/scenes_clip_pooled.log 2>&1
wait
tail -n 2 $OUT/scenes_*.log
if [ "$S" = 0 ]; then
  for m in scenes_unet scenes_clip scenes_clip_pooled; do tar czf $OUT/$m.tgz --exclude=train_state.pt -C $M $m; done
else
  tar czf $OUT/model_cards_seed$S.tgz -C $M scenes_unet/model_card.json scenes_clip/model_card.json scenes_clip_pooled/model_card.json
fi
timeout 170 python3 -m dcanalysis.lab.scene_eval --models-root $M --out $OUT/scenes_seed$S --items 300 --per-thing 10 \
  --trials 100 --batch-size 1024 > $OUT/scene_eval.log 2>&1
tail -n 30 $OUT/scene_eval.log
tar czf $OUT/scenes_results_seed$S.tgz -C $OUT scenes_seed$S
rm -rf $M $OUT/scenes_seed$S
ls -la $OUT
