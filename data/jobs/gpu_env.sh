# Sourced at the start of every GPU job: install the carried wheels (diffusers is not on the GPU machine)
# next to its own torch, and make the working tree importable.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -c "import torch, diffusers, scipy; print('torch', torch.__version__, 'diffusers', diffusers.__version__, torch.cuda.get_device_name())"
