#!/usr/bin/env bash
# Issue 21 point 3's last two checks on one H200, in two commands on the same warm machine:
#   check: the gpu-marked test (compiled lab classification on CUDA equals eager within bf16 tolerance: compiled,
#          with CUDA graphs, with CUDA graphs and tuned kernels), then the lab evaluation's test phase as the
#          committed lab jobs ran it (eager, 8 images a call, one batch per call) on the first 1,000 test images of
#          each dataset: the rate to compare against.
#   fast:  the same test phase (logs with tqdm's lines, as they came) on all 10,000 test images with the fast engine (CUDA graphs, tuned kernels, 256
#          images a call in batches of 4,000: one compiled shape), Fashion-MNIST first, MNIST in the time left.
# Both leave logs, summaries and the runs' records under OUTDIR; python -m dcanalysis.bench.engine_runs compares
# them with the committed runs (data/results/lab/*_test: the same noise per image, eager, on an H100).
# Sent with `trim_tree.sh hide D`, carrying .whl and data/lab/{fashion_mnist,mnist}-test.npz.
# Usage: bash data/jobs/lab_engine_h200.sh OUTDIR check|fast
# Run on one H200 (data/results/speed/lab_engine_h200_*): 'check' at 8ead9db (395 s: 3 gpu tests passed in 259 s; eager
# Fashion-MNIST 0.0529 s, MNIST 0.0219 s per image); 'fast' at 8ead9db with the default ENGINE (560 s: Fashion-MNIST
# stopped by its timeout at 7,168 images, MNIST by its at 0, both still compiling; that version filtered the
# logs down to their timings); 'fast' with ENGINE=--compile END=390 at the next commit (400 s: Fashion-MNIST
# 9,216 images before its timeout, MNIST all 10,000). python -m dcanalysis.bench.engine_runs reads the records.
set -u
OUT=${1:?output dir}; STEP=${2:?check or fast}
source data/jobs/gpu_env.sh
E="python3 -m dcanalysis.lab.evaluate --phases test --trials 100"
RUNS=/tmp/lab_engine  # the run directories (one error table per image) stay on the machine: $OUT gets 8 files
SECONDS=0
case $STEP in
  check)
    (time timeout 330 python3 -m pytest -q -p no:cacheprovider -m gpu tests/engine/test_compile.py) > $OUT/gpu_tests.log 2>&1
    tail -n 5 $OUT/gpu_tests.log
    for d in fashion_mnist mnist; do
      (time timeout 150 $E --dataset $d --out $RUNS/eager --n-images 1000 --images-per-batch 8 --no-compile) \
        > $OUT/eager_$d.log 2>&1
      tail -n 3 $OUT/eager_$d.log
    done;;
  fast)
    # ENGINE: the engine options (default CUDA graphs and tuned kernels; ENGINE=--compile for inductor's defaults);
    # END: the seconds after which nothing new starts (MNIST's test phase stops at its time limit, 0.55 x --budget)
    F="--n-images 10000 --images-per-batch 256 --batch-size 4000 ${ENGINE:---cuda-graphs --tune-kernels}"
    END=${END:-545}
    (time timeout $(( END - 125 )) $E --dataset fashion_mnist --out $RUNS/fast $F) > $OUT/fast_fashion_mnist.log 2>&1
    tail -n 3 $OUT/fast_fashion_mnist.log
    left=$(( END - SECONDS ))
    (time timeout $(( left + 40 )) $E --dataset mnist --out $RUNS/fast $F --budget $(( left * 100 / 55 ))) \
      > $OUT/fast_mnist.log 2>&1
    tail -n 3 $OUT/fast_mnist.log;;
esac
# records and manifests (the per-image error tables stay behind: the records hold each image's mean errors)
for e in eager fast; do
  for f in $RUNS/$e/*_summary.json; do [ -f $f ] && cp $f $OUT/${e}_$(basename $f); done
  [ -d $RUNS/$e ] && tar czf $OUT/${e}_runs.tgz -C $RUNS/$e --exclude='*.npy' $(cd $RUNS/$e && ls -d *_test)
done
echo "step $STEP: $SECONDS s"
