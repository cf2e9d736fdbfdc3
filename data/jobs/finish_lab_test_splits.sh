#!/usr/bin/env bash
# Resume the committed lab runs (data/results/lab) on one H100 with 8 images per network call, test phase
# only; finished images are never recomputed. Usage: bash data/jobs/finish_lab_test_splits.sh OUTDIR
set -u
OUT=${1:?output dir}
R=/tmp/ev/runs; mkdir -p $R && cp -r data/results/lab/*_s3 data/results/lab/*_test data/results/lab/*strategy* data/results/lab/mnist_sklearn_digits $R/
source data/jobs/gpu_env.sh
E="python3 -m dcanalysis.lab.evaluate --out $R --n-images 10000 --n-shifted 1000 --trials 100 --phases test --images-per-batch 8"
$E --dataset fashion_mnist --strategies uniform middle fixed_500 fixed_0_500_999 fixed_475_500_525 --n-strategy 300 --budget 420 > $OUT/fashion.log 2>&1
$E --dataset mnist --budget 220 > $OUT/mnist.log 2>&1
cp $R/*_summary.json $OUT/
cd $R && tar czf $OUT/test_records.tgz fashion_mnist_test/records-rank0.jsonl mnist_test/records-rank0.jsonl
