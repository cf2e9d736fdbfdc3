import os
import sys
from pathlib import Path

# Never reach for the hub in tests: a missing file must fail fast, not retry for minutes.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture
def toy_adapter():
    from dcanalysis.adapters.toy import GaussianMixtureAdapter, two_moons_like

    return GaussianMixtureAdapter(two_moons_like())
