import numpy as np
import pytest
import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.adapters.toy import GaussianMixtureAdapter, exact_log_likelihood, two_moons_like
from dcanalysis.denoising_error import denoising_error, noisy_sample
from dcanalysis.processes import DDPM, RectifiedFlow


def test_eps_models_give_the_paper_eq5_error():
    process = DDPM()
    g = torch.Generator().manual_seed(0)
    x0, eps, out = (torch.randn(4, 1, 8, 8, generator=g) for _ in range(3))
    t = torch.tensor([5, 200, 600, 999])
    abar = process.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = noisy_sample(process, x0, eps, t)
    assert torch.equal(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * eps)
    assert torch.allclose(denoising_error(process, out, x_t, x0, eps, t), ((eps - out) ** 2).mean((1, 2, 3)))
    assert torch.allclose(denoising_error(process, out, x_t, x0, eps, t, loss="l1"), (eps - out).abs().mean((1, 2, 3)))


def test_flow_models_give_the_velocity_error():
    process = RectifiedFlow(shift=3.0)
    g = torch.Generator().manual_seed(0)
    x0, eps, v = (torch.randn(3, 4, 4, generator=g) for _ in range(3))
    t = torch.tensor([0, 500, 999])
    x_t = noisy_sample(process, x0, eps, t)
    assert torch.allclose(denoising_error(process, v, x_t, x0, eps, t), (((eps - x0) - v) ** 2).mean((1, 2)))


def test_a_flow_matching_model_classifies_through_the_same_protocol():
    """The analytic Gaussian-mixture model under rectified flow (an exact velocity predictor) goes through the
    unchanged classifier; like the DDPM version it agrees with exact Bayes on most points."""
    classes = two_moons_like()
    flow = GaussianMixtureAdapter(classes, RectifiedFlow(shift=1.0))
    ddpm = GaussianMixtureAdapter(classes)
    points = torch.randn(60, 2, generator=torch.Generator().manual_seed(3)) * 1.2
    bayes = torch.stack([exact_log_likelihood(points, c) for c in classes], 1).argmax(1)
    agree = {}
    for name, adapter in [("flow", flow), ("ddpm", ddpm)]:
        clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(200)))
        preds = torch.tensor([clf.classify(x, [0, 1], image_index=i).prediction for i, x in enumerate(points)])
        agree[name] = (preds == bayes).float().mean().item()
    assert agree["flow"] >= 0.85 and agree["ddpm"] >= 0.85, agree
    r = DiffusionClassifier(flow, ClassifierConfig(schedule=Schedule.exhaustive(20))).classify(points[0], [0, 1])
    assert r.n_evaluations == 40 and torch.isfinite(r.errors).all()


def test_a_target_the_process_lacks_is_refused():
    with pytest.raises(ValueError, match="DDPM models predict one of"):
        DiffusionClassifier(GaussianMixtureAdapter(two_moons_like()), ClassifierConfig(target="velocity"))


def test_committed_lab_run_is_reproduced_by_todays_code():
    """Image 0 of the committed MNIST test run (H100, bf16) recomputed here in float32 through the new protocol:
    the same plan (timesteps), errors within bf16's precision, the same prediction."""
    from dcanalysis.evaluation.analysis import ErrorTables
    from dcanalysis.evaluation.lab_datasets import load_lab_dataset, to_model_input
    from dcanalysis.lab.registry import load_lab_diffusion
    from dcanalysis.paths import RESULTS_DIR

    run = RESULTS_DIR / "lab" / "mnist_test"
    stored = ErrorTables.load(run)
    clf = DiffusionClassifier(load_lab_diffusion("mnist_unet"),
                              ClassifierConfig(schedule=Schedule.exhaustive(100), batch_size=500))
    x = to_model_input(load_lab_dataset("mnist", test_only=True).test_images[:1])[0]
    r = clf.classify(x, range(10), image_index=int(stored.ids[0]))
    assert np.array_equal(r.timesteps.numpy(), stored.timesteps)
    ours, theirs = r.errors.numpy(), stored.errors[0].astype(np.float64)
    rel = np.abs(ours - theirs) / theirs
    assert np.median(rel) < 0.02 and rel.max() < 0.2
    assert np.allclose(ours.mean(1), theirs.mean(1), rtol=0.02)
    assert r.prediction == int(theirs.mean(1).argmin()) == int(stored.labels[0])


@pytest.mark.parametrize("model", ["toy", "mnist_unet"])
def test_the_paper_estimate_equals_the_classifiers_exhaustive_mean_errors(model, toy_adapter):
    """``expected_denoising_error`` (one network call per trial) gives what the classifier computes in shared
    batches: the same plan, the same Eq. 5, the same mean over trials."""
    from dcanalysis.classifier import ClassifierConfig, DiffusionClassifier
    from dcanalysis.denoising_error import expected_denoising_error
    from dcanalysis.schedules import Schedule

    if model == "toy":
        adapter, x, candidates = toy_adapter, torch.tensor([0.3, -0.2]), [0, 1]
    else:
        from dcanalysis.adapters.registry import load_adapter

        adapter = load_adapter("mnist_unet")
        x, candidates = torch.zeros(1, 28, 28).uniform_(-1, 1, generator=torch.Generator().manual_seed(1)), range(10)
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(6), batch_size=7, seed=3))
    result = clf.classify(x, candidates, image_index=4)
    x0 = clf.prepare(x)
    plan = clf.noise_plan(tuple(x0.shape), 4)
    estimate = expected_denoising_error(adapter, x0, clf.embed(list(candidates)), plan)
    torch.testing.assert_close(estimate, result.mean_errors, rtol=1e-5, atol=1e-7)
    assert int(estimate.argmin()) == result.prediction_index
