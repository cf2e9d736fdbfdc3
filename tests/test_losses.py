import pytest
import torch

from dcanalysis.losses import get_loss, huber, l1, l2


def test_kernels_reduce_to_one_number_per_sample():
    p, t = torch.zeros(3, 2, 4, 4), torch.ones(3, 2, 4, 4) * 2
    assert torch.allclose(l2(p, t), torch.full((3,), 4.0))
    assert torch.allclose(l1(p, t), torch.full((3,), 2.0))
    assert torch.allclose(huber(p, t), torch.full((3,), 1.5))  # linear part: delta * (|d| - delta / 2)


def test_unknown_kernel():
    with pytest.raises(ValueError, match="l2"):
        get_loss("mse")
