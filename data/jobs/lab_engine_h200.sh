#!/usr/bin/env bash
# Issue 21 point 3's last two checks on one H200, in two commands on the same warm machine:
#   check: the gpu-marked test (compiled lab classification on CUDA equals eager within bf16 tolerance: compiled,
#          with CUDA graphs, with CUDA graphs and tuned kernels), then the lab evaluation's test phase as the
#          committed lab jobs ran it (eager, 8 images a call, one batch per call) on the first 1,000 test images of
#          each dataset: the rate to compare against.
#   fast:  the same test phase on all 10,000 test images with the fast engine (CUDA graphs, tuned kernels, 256
#          images a call in batches of 4,000: one compiled shape), Fashion-MNIST first, MNIST in the time left.
# Both leave logs, summaries and the runs' records under OUTDIR; lab_engine_report.py compares them with the
# committed runs (data/results/lab/*_test: the same noise per image, eager, on an H100).
# Sent with `trim_tree.sh hide D`, carrying .whl and data/lab/{fashion_mnist,mnist}-test.npz.
# Usage: bash data/jobs/lab_engine_h200.sh OUTDIR check|fast
set -u
OUT=${1:?output dir}; STEP=${2:?check or fast}
source data/jobs/gpu_env.sh
E="python3 -m dcanalysis.lab.evaluate --phases test --trials 100"
RUNS=/tmp/lab_engine  # the run directories (one error table per image) stay on the machine: $OUT gets 8 files
SECONDS=0
case $STEP in
  check)
    (time timeout 330 python3 -m pytest -q -p no:cacheprovider -m gpu tests/speed/test_engine.py) > $OUT/gpu_tests.log 2>&1
    tail -n 5 $OUT/gpu_tests.log
    for d in fashion_mnist mnist; do
      (time timeout 150 $E --dataset $d --out $RUNS/eager --n-images 1000 --images-per-batch 8 --no-compile) \
        2>&1 | grep -v "$LOG_NOISE" > $OUT/eager_$d.log
      tail -n 3 $OUT/eager_$d.log
    done;;
  fast)
    F="--n-images 10000 --images-per-batch 256 --batch-size 4000 --cuda-graphs --tune-kernels"
    (time timeout 420 $E --dataset fashion_mnist --out $RUNS/fast $F) 2>&1 | grep -v "$LOG_NOISE" > $OUT/fast_fashion_mnist.log
    tail -n 3 $OUT/fast_fashion_mnist.log
    # MNIST in what is left of 560 s: the test phase's time limit is 0.55 x --budget (lab.evaluate)
    left=$(( 545 - SECONDS ))
    (time timeout $(( left + 15 )) $E --dataset mnist --out $RUNS/fast $F --budget $(( left * 100 / 55 ))) 2>&1 \
      | grep -v "$LOG_NOISE" > $OUT/fast_mnist.log
    tail -n 3 $OUT/fast_mnist.log;;
esac
# records and manifests (the per-image error tables stay behind: the records hold each image's mean errors)
for e in eager fast; do
  for f in $RUNS/$e/*_summary.json; do [ -f $f ] && cp $f $OUT/${e}_$(basename $f); done
  [ -d $RUNS/$e ] && tar czf $OUT/${e}_runs.tgz -C $RUNS/$e --exclude='*.npy' $(cd $RUNS/$e && ls -d *_test)
done
echo "step $STEP: $SECONDS s"
