import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.adapters.toy import GaussianMixtureAdapter, two_moons_like
from dcanalysis.speed.versus_official import SEQUENTIAL_CANDIDATES, choose_sequential


def test_the_sequential_test_is_tuned_on_its_own_images_and_the_cheapest_within_tolerance_wins():
    adapter = GaussianMixtureAdapter(two_moons_like(3))
    points = torch.randn(30, 2, generator=torch.Generator().manual_seed(0)) * 1.3
    labels = torch.stack([torch.tensor(0)] * 30).numpy()
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(40), batch_size=256))
    out = choose_sequential(clf, points, labels, first_index=1000, per_call=16, trials=40, tolerance=1.0,
                            candidates=[0, 1, 2])
    assert len(out["candidates"]) == len(SEQUENTIAL_CANDIDATES) and out["images"] == 30
    # with a tolerance of 100 % every setting qualifies: the one replaying the fewest evaluations is chosen
    assert out["chosen"]["evaluations"] == min(r["evaluations"] for r in out["candidates"])
    strict = choose_sequential(clf, points, labels, first_index=1000, per_call=16, trials=40, tolerance=0.0,
                               candidates=[0, 1, 2])
    assert strict["chosen"]["accuracy"] >= strict["exhaustive_accuracy"] or \
        strict["chosen"]["accuracy"] == max(r["accuracy"] for r in strict["candidates"])
