#!/usr/bin/env bash
# The tracked tree (about 97 MiB) is over the device tool's 64 MiB limit for what travels with a command, so each
# book_full.sh command is sent with only what its chapters read. Run here, not on the GPU machine:
#   bash data/jobs/trim_tree.sh hide A   # then: run book_full.sh ... 01 02 03 04 05 09 10
#   bash data/jobs/trim_tree.sh restore  # before committing anything
# A: chapters 01-05, 09, 10 · B: 06, 08, 08b · C: 07. Carry .whl .whl_book data/lab/{mnist,fashion_mnist}-test.npz.
# D: labelled_data_h200.sh (every MNIST and Fashion-MNIST model, no results). Carry .whl data/lab_share.
set -eu
cd "$(dirname "$0")/../.."
AWAY=${TRIM_AWAY:-/tmp/dcanalysis-trimmed}
common="data/models/mnist_vit data/models/fashion_mnist_vit data/models/mnist_resnet data/models/fashion_mnist_resnet book/executed data/results/archive data/results/lab/error_functions data/results/lab/own_images"
case ${1:?hide A|B|C|D or restore} in
  hide)
    case ${2:?A, B, C or D} in
      A) list="$common data/models/scenes_unet data/models/scenes_clip data/models/scenes_clip_pooled data/models/scenes_text data/results/lab/scenes data/results/lab/scenes_replicates";;
      B) list="$common data/models/fashion_mnist_unet data/models/mnist_unet $(ls -d data/results/lab/* | grep -v '/scenes')";;
      C) list="$common data/models/scenes_clip data/models/scenes_clip_pooled data/results/lab";;
      D) list="book/executed data/results/archive data/results/lab $(ls -d data/models/scenes_*)";;
    esac
    for p in $list; do mkdir -p "$AWAY/$(dirname "$p")"; mv "$p" "$AWAY/$p"; done;;
  restore)
    (cd "$AWAY" && find . -type f) | while read -r f; do mkdir -p "$(dirname "$f")"; mv "$AWAY/$f" "$f"; done
    rm -rf "$AWAY"; git status --short | head;;
esac
