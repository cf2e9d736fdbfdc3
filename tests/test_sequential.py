import math

import pytest
import torch

from dcanalysis import Schedule, SequentialTest
from dcanalysis.pruning import keep_each, policy_steps
from dcanalysis.sequential import confidently_worse, prefix_means, prefix_sums, survivors


def _table(b=6, k=5, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, k, n, generator=g, dtype=torch.float64) + torch.linspace(0, 0.3, k).view(1, k, 1)


def test_a_rows_prefix_sum_is_the_same_number_whatever_the_table_length_and_its_batch_companions():
    e = _table()
    n = torch.tensor([1, 7, 13, 40, 2, 29])
    together = prefix_sums(e, n)
    for b in range(len(e)):
        alone = prefix_sums(e[b:b + 1, :, :n[b]], n[b:b + 1])
        assert torch.equal(together[b], alone[0])  # bit for bit: the refilled and lockstep loops decide alike
    torch.testing.assert_close(prefix_means(e, n)[3], e[3].mean(dim=1), rtol=1e-12, atol=0)


def test_the_test_statistic_is_the_paired_t_bound_of_the_module_docstring():
    e = _table(b=1, k=3, n=12)[0]
    d = e - e[0]
    z = 2.0537489  # Phi^-1(0.98)
    expected = (d.mean(dim=1) - z * d.std(dim=1) / math.sqrt(12)) > 0
    expected[0] = False
    assert torch.equal(confidently_worse(e, 0, 0.98), expected)
    clear = torch.stack([torch.zeros(12), torch.full((12,), 1.0) + 0.01 * torch.randn(12, generator=torch.Generator().manual_seed(0))])
    assert confidently_worse(clear, 0, 0.99).tolist() == [False, True]
    assert confidently_worse(clear, 1, 0.99).tolist() == [False, False]  # better than the leader is never worse


def test_images_at_different_rounds_get_the_decisions_of_their_own_rounds():
    e = _table(b=8, k=6, n=30, seed=2)
    alive = torch.rand(8, 6, generator=torch.Generator().manual_seed(1)) > 0.3
    alive[:, 0] = True
    n = torch.tensor([2, 4, 6, 30, 10, 4, 18, 2])
    together = survivors(e, alive, n, 0.9)
    for b in range(8):
        assert torch.equal(together[b], survivors(e[b:b + 1, :, :n[b]], alive[b:b + 1], n[b:b + 1], 0.9)[0])
    assert not (together & ~alive).any()


@pytest.mark.parametrize("policy", [SequentialTest(step=2, min_trials=4, max_trials=30, confidence=0.9),
                                    Schedule.from_lists([6, 30], [2, 1])], ids=["sequential", "staged"])
def test_keep_each_decides_every_image_by_its_own_rounds_keep(policy):
    e = _table(b=7, k=6, n=30, seed=3)
    steps = policy_steps(policy)
    rounds = torch.tensor([0, 1, len(steps) - 1, 5 % len(steps), 1, 0, 3 % len(steps)])
    alive = torch.ones(7, 6, dtype=torch.bool)
    alive[1, 4] = False
    got = keep_each(policy, steps, e, alive, rounds)
    for b, j in enumerate(rounds.tolist()):
        _, hi, keep = steps[j]
        assert torch.equal(got[b], keep(e[b:b + 1, :, :hi], alive[b:b + 1])[0])
    if isinstance(policy, SequentialTest):
        assert torch.equal(got[0], alive[0])  # before min_trials nobody is dropped
        assert not got[2].all()  # thirty trials separate these candidates
