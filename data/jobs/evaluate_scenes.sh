#!/usr/bin/env bash
# Evaluates the scene lab models (committed under data/models) on one H100: Winoground-style swaps (300 items
# per split) and 20-way zero-shot classification of seen and held-out compositions (10 images per pair).
# Resumable: rerun the same command with the returned run directory restored to continue.
# Usage on the GPU machine: bash data/jobs/evaluate_scenes.sh OUTDIR
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
timeout 540 python3 -m dcanalysis.lab.scene_eval --out $OUT/scenes_gpu --items 300 --per-thing 10 --trials 100 \
  --batch-size 1024 > $OUT/scene_eval.log 2>&1
tail -n 30 $OUT/scene_eval.log
