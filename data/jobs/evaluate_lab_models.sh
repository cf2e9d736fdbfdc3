#!/usr/bin/env bash
# Diffusion Classifier and baselines on the lab datasets, in and out of distribution, on one GPU.
# The committed runs (data/results/lab) ran eager on an H100 in several commands (--phases, budgets in seconds).
# ENGINE is now the default compilation with 256 images a call: on one H200 the whole job projects to about 620 s
# instead of 1,260 s eager (dcanalysis/bench/README.md, "A whole evaluation run", commit 415ff24). A compiled run
# records its engine, so it does not resume an eager run directory: ENGINE=--no-compile extends the committed ones.
# Usage on the GPU machine: bash data/jobs/evaluate_lab_models.sh OUTDIR
set -u
OUT=${1:?output dir}
mkdir -p $OUT/runs
source data/jobs/gpu_env.sh
E="python3 -m dcanalysis.lab.evaluate ${ENGINE:---compile --overlap --images-per-batch 256 --batch-size 4000}"
$E --dataset fashion_mnist --out $OUT/runs --n-images 10000 --n-shifted 1000 --trials 100 \
   --strategies uniform middle fixed_500 fixed_0_500_999 fixed_475_500_525 --n-strategy 300 --budget ${FASHION_BUDGET:-330} ${PHASES:+--phases $PHASES} > $OUT/fashion.log 2>&1
$E --dataset mnist --out $OUT/runs --n-images 10000 --n-shifted 1000 --trials 100 --budget ${MNIST_BUDGET:-150} ${PHASES:+--phases $PHASES} > $OUT/mnist.log 2>&1
# Compact tables (first 1000 images of each run) + records + manifests, under 16 MB per file.
python3 -c "
import pathlib
from dcanalysis.evaluation.runs import consolidate_tables
for d in sorted(pathlib.Path('$OUT/runs').iterdir()):
    if d.is_dir(): consolidate_tables(d, max_images=1000)
"
cd $OUT/runs && tar czf $OUT/fashion_runs.tgz --exclude='errors-rank*' fashion_mnist_* && tar czf $OUT/mnist_runs.tgz --exclude='errors-rank*' mnist_*
cp $OUT/runs/*_summary.json $OUT/
ls -la $OUT
