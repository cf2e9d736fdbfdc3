import pytest

from dcanalysis.schedules import PAPER_PETS, Schedule, get_schedule


def test_paper_pets_costs_2050_evaluations():
    assert PAPER_PETS.evaluations(37) == 2050
    assert Schedule.exhaustive(100).evaluations(10) == 1000


@pytest.mark.parametrize("trials,keep", [((25, 25), (5, 1)), ((25, 250), (5, 6)), ((25,), (0,))])
def test_bad_schedules_are_refused(trials, keep):
    with pytest.raises(ValueError):
        Schedule.from_lists(trials, keep)


def test_registry():
    assert get_schedule("paper_pets") is PAPER_PETS
    with pytest.raises(ValueError, match="paper_pets"):
        get_schedule("pets")
