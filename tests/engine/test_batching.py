import pytest
import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.engine.batching import Batched, padded_size
from test_classifier import ShiftedDenoiser


def test_static_shapes_pad_the_last_batch_without_changing_results():
    model = ShiftedDenoiser([0.0, 0.5, 1.0])
    cfg = ClassifierConfig(schedule=Schedule.exhaustive(7), batch_size=4)
    plain = DiffusionClassifier(model, cfg).classify(torch.zeros(3), [0, 1, 2])
    model.calls.clear()
    static = DiffusionClassifier(Batched(model, static_rows=4), cfg).classify(torch.zeros(3), [0, 1, 2])
    assert set(model.calls) == {4} and torch.equal(plain.errors, static.errors)


def test_padded_sizes_pad_the_last_batch_to_the_smallest_size_that_holds_it():
    assert [padded_size(n, 64, 4) for n in (1, 8, 9, 17, 33, 64)] == [8, 8, 16, 32, 64, 64]
    assert padded_size(3, 64, 1) == 64 and padded_size(1, 2, 5) == 1
    model = ShiftedDenoiser([0.0, 0.5, 1.0])
    cfg = ClassifierConfig(schedule=Schedule.exhaustive(7), batch_size=16)
    plain = DiffusionClassifier(model, cfg).classify(torch.zeros(3), [0, 1, 2])
    model.calls.clear()
    padded = DiffusionClassifier(Batched(model, static_rows=16, padded_sizes=3), cfg).classify(torch.zeros(3), [0, 1, 2])
    assert model.calls == [16, 8] and torch.equal(plain.errors, padded.errors)  # 21 rows: 16, then 5 padded to 8


def test_an_out_of_memory_batch_halves_itself_and_gives_the_same_numbers(toy_adapter):
    class SmallGPU:
        """The toy model on a 'GPU' that holds at most 8 rows per call."""

        def __init__(self, inner):
            self.inner, self.process, self.device, self.sizes = inner, inner.process, inner.device, []

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def predict(self, x_t, t, cond, rows=None):
            self.sizes.append(x_t.shape[0])
            if x_t.shape[0] > 8:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return self.inner.predict(x_t, t, cond)

    small = SmallGPU(toy_adapter)
    wrapped = Batched(small)
    x = torch.tensor([0.2, -0.4])
    schedule = Schedule.from_lists((10, 20), (2, 1))
    with pytest.warns(UserWarning, match="out of memory: continuing with batches of 5 rows"):
        big = DiffusionClassifier(wrapped, ClassifierConfig(schedule=schedule, batch_size=32)).classify(x, [0, 1])
    assert wrapped.max_rows == 5  # the next stage and the next image start at the size that fitted
    ref = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=schedule, batch_size=8)).classify(x, [0, 1])
    assert torch.equal(big.errors, ref.errors) and max(small.sizes[2:]) <= 5 and small.sizes[:2] == [20, 10]


def test_the_wrapper_is_the_adapter_to_everyone_else(toy_adapter):
    wrapped = Batched(toy_adapter, static_rows=8)
    assert wrapped.process is toy_adapter.process and wrapped.device == toy_adapter.device
    from dcanalysis.denoiser import DiffusionAdapter

    assert isinstance(wrapped, DiffusionAdapter)
