#!/usr/bin/env bash
# Resume the committed lab runs (data/results/lab) of one dataset on one H100, 8 images per network call:
# the rest of the 10,000-image test split, then far OOD (the other dataset's test split, 1,000 images).
# Finished images are never recomputed, so a run cut by its budget continues in the next command.
# Usage: bash data/jobs/finish_lab_test_splits.sh OUTDIR fashion_mnist|mnist [BUDGET_S] [PHASES]
# (PHASES default "test far_ood"; e.g. "strategies shifted" to finish chapter 4's and chapter 9's sets)
set -u
OUT=${1:?output dir}; D=${2:?dataset}; B=${3:-480}; PHASES=${4:-test far_ood}
R=/tmp/ev/runs; mkdir -p $R && cp -r data/results/lab/${D}_* $R/
source data/jobs/gpu_env.sh
EXTRA=""; [ $D = fashion_mnist ] && EXTRA="--strategies uniform middle fixed_500 fixed_0_500_999 fixed_475_500_525 --n-strategy 300"
python3 -m dcanalysis.lab.evaluate --dataset $D --out $R --n-images 10000 --n-shifted 1000 --trials 100 \
  --phases $PHASES --images-per-batch 8 --budget $B $EXTRA > $OUT/$D.log 2>&1
tail -n 5 $OUT/$D.log
cp $R/${D}_summary.json $OUT/
# the book reads tables.npz (first 1,000 images) of the runs that have one; committed images come from the
# carried tables.npz, new ones from their per-image tables
python3 -c "
import pathlib
from dcanalysis.evaluation.runs import consolidate_tables
for d in sorted(pathlib.Path('$R').glob('${D}_*/tables.npz')):
    consolidate_tables(d.parent, max_images=1000)
"
cd $R && tar czf $OUT/${D}_records.tgz ${D}_*/records-rank0.jsonl ${D}_*/manifest.json ${D}_*/tables.npz
