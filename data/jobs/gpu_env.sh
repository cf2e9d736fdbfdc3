# Sourced at the start of every GPU job: install the carried wheels (diffusers is not on the GPU machine)
# next to its own torch, and make the working tree importable.
# Once per machine: two jobs started side by side must not reinstall under each other's imports.
if [ ! -e /tmp/site/.dcanalysis-wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  touch /tmp/site/.dcanalysis-wheels
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
# What a job's log leaves out (grep -v "$LOG_NOISE"): library warnings repeated per call and tqdm's rate lines
LOG_NOISE="should be kept in float32\|UserWarning\|warn_once\|lru_cache\|This call originates\|upsampling.py\|is_torch_version\|it/s\]\|s/it\]\|^$"
python3 -c "import torch, diffusers, scipy; print('torch', torch.__version__, 'diffusers', diffusers.__version__, torch.cuda.get_device_name())"

# The GPU's SM clock, power and clock-event reasons every 200 ms into $1, until stop_clock_log
# (gpu_profile.read_clock_log reads it; benchmark rows carry timed_from/timed_to to line up with it).
start_clock_log() {
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu,clocks_throttle_reasons.active \
    --format=csv -lms 200 > "$1" 2>&1 &
  CLOCK_LOG_PID=$!
}
stop_clock_log() { kill $CLOCK_LOG_PID; }
