#!/usr/bin/env bash
# Executes chapters of the book in the full profile on one GPU and returns the executed notebooks, their figures
# and run records (<chapter>.run.json: parameters, GPU, seconds, commit) as one archive, to be unpacked into
# book/executed/full and committed. The GPU machine has no Jupyter stack: papermill, ipykernel and their
# needs travel as wheels in .whl_book (debugpy and the widget front-end packages are left out: never imported).
# The data a chapter reads must travel too (models, results, data/lab/*-test.npz); the 64 MiB limit on what travels
# means sending each command with a trimmed tree (data/jobs/trim_tree.sh): set C for "07", the chapter whose full
# profile runs a trained network on the GPU (the rest run on a CPU machine: book.build.FULL_ON_CPU; 06's page
# shows its quick execution).
# Usage: DCANALYSIS_COMMIT=<sha> bash data/jobs/book_full.sh OUTDIR TAG CHAPTER...
set -u
OUT=${1:?output dir}; TAG=${2:?tag}; shift 2
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_book/*.whl || exit 1
source data/jobs/gpu_env.sh
E=/tmp/book_full_$TAG; rm -rf $E
python3 -m dcanalysis.book --profile full --chapters "$@" --no-html --force --out $E > $OUT/book_$TAG.log 2>&1
echo "exit $?"; tail -n 20 $OUT/book_$TAG.log
grep -h '"seconds"\|"gpu"' $E/*.run.json
tar czf $OUT/book_full_$TAG.tgz -C $E --exclude='*.key' --exclude=runs .
