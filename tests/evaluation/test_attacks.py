"""dcanalysis.evaluation.attacks: the differentiable scores are the method's own numbers, PGD stays in its ball
and finds what a linear model's gradient points to."""
import torch

from dcanalysis.adapters.toy import GaussianMixtureAdapter, two_moons_like
from dcanalysis.denoising_error import expected_denoising_error
from dcanalysis.evaluation.attacks import (diffusion_scores, margin_loss, pgd_linf, pixel_budget,
                                           stratified_timesteps)
from dcanalysis.noise import NoisePlan


def test_diffusion_scores_are_minus_the_methods_expected_error_and_carry_gradients():
    adapter = GaussianMixtureAdapter(two_moons_like(3))
    cond = adapter.embed([0, 1, 2])
    x0 = torch.tensor([[0.3, 0.2], [-0.5, 0.8]], requires_grad=True)
    t = torch.tensor([[100, 600, 900], [50, 500, 950]])
    noise = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0))
    scores = diffusion_scores(adapter, x0, cond, t, noise)
    for i in range(2):
        expected = expected_denoising_error(adapter, x0[i].detach(), cond, NoisePlan(t[i], noise[i]))
        assert torch.allclose(-scores[i].detach().double(), expected, atol=1e-6)
    scores.sum().backward()
    assert x0.grad is not None and x0.grad.abs().sum() > 0


def test_margin_loss_is_positive_exactly_when_misclassified():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    assert margin_loss(logits, torch.tensor([0, 0])).tolist() == [-1.0, 3.0]


def test_pgd_stays_in_its_ball_and_flips_a_linear_classifier():
    w = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # class 0 if x0 > x1
    x = torch.tensor([[0.2, 0.0], [0.7, 0.0]])
    y = torch.tensor([0, 0])
    gen = torch.Generator().manual_seed(0)
    adv = pgd_linf(lambda z: margin_loss(z @ w.T, y), x, 0.3, steps=10, step_size=0.1, generator=gen)
    assert ((adv - x).abs() <= 0.3 + 1e-6).all() and adv.min() >= -1 and adv.max() <= 1
    pred = (adv @ w.T).argmax(1)
    assert pred.tolist() == [1, 0]  # a gap of 0.2 closes with 0.3 a coordinate (0.6 in all); one of 0.7 cannot
    assert torch.equal(pgd_linf(lambda z: z.sum(1), x, 0.0, steps=3, step_size=0.1, generator=gen), x)


def test_timesteps_cover_every_slice_and_budgets_convert():
    t = stratified_timesteps(5, 4, 1000, torch.Generator().manual_seed(1))
    assert t.shape == (5, 4) and ((t // 250) == torch.arange(4)).all()
    assert pixel_budget(8 / 255) == 16 / 255
