#!/usr/bin/env bash
# Issue 21 points 1 and 4 in one H200 command, SD-2-base at 512 px with random weights (speed only):
#  1. the first call of the compiled UNet (batch 64) with inductor's on-disk cache empty: the whole UNet against
#     its repeated blocks only (regional compilation, engine.optimise(regional=True)), eager beside them;
#  2. the same in a second process reading the cache the first one wrote (what a rerun on the same machine, or a
#     run given TORCHINDUCTOR_CACHE_DIR from an earlier one, pays);
#  3. the Pets schedule end to end beside the official loop re-stated (bench --peer), plain and shared prefix,
#     compiled from the warm cache of 1-2.
# Usage: [END_S=585] bash data/jobs/compile_and_peer_h200.sh OUTDIR   (END_S: second of the command at which the
# Pets step is stopped)
set -u
OUT=${1:?output dir}
source data/jobs/gpu_env.sh
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_cache_$$   # empty at the start of this command
F="should be kept in float32\|UserWarning\|warn_once\|lru_cache\|This call originates\|upsampling.py\|is_torch_version\|^$"
B="python3 -m dcanalysis.bench.bench --seconds 3"
start_clock_log $OUT/gpu_clocks.csv
$B --sweep --batches 64 --variants eager compiled "compiled, repeated blocks" --out $OUT/compile_cold.json 2>&1 | grep -v "$F" | tee $OUT/bench.log
$B --sweep --batches 64 --variants compiled "compiled, repeated blocks" --out $OUT/compile_warm.json 2>&1 | grep -v "$F" | tee -a $OUT/bench.log
timeout $((${END_S:-585} - SECONDS)) $B --pets-only --peer --share-prefix --batch 64 --out $OUT/bench_pets_peer.json 2>&1 | grep -v "$F" | tee -a $OUT/bench.log
stop_clock_log
