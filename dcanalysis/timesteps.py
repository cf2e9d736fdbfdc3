"""Timestep strategies: which t each Monte-Carlo trial uses (paper Sec. 4.1, Fig. 4).

Every strategy has one signature::

    strategy(n_trials, *, num_timesteps=1000, generator=None) -> LongTensor (n_trials,)

and returns 0-based indices into ``alphas_cumprod`` (diffusers' convention), so the paper's
``t in [1, 1000]`` is our ``t + 1``. Strategies are registered by name in ``TIMESTEP_STRATEGIES``; the same
names feed the CLI, the papermill parameters and the legends of the Fig. 4 plots.

Order matters. The adaptive classifier (Algorithm 2) evaluates trial prefixes: stage one uses the first
``n_1`` trials, stage two extends them. Deterministic strategies therefore return their timesteps in a
*low-discrepancy order*: any prefix is itself spread over the whole range, so a 25-trial first stage of a
250-trial even plan still covers early, middle and late t.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence

import torch

TimestepStrategy = Callable[..., torch.Tensor]


def van_der_corput_order(n: int) -> torch.Tensor:
    """A permutation of ``range(n)`` whose every prefix is spread evenly over ``[0, n)``.

    The base-2 radical inverse of j (its bits mirrored around the binary point) visits [0, 1) so that the first
    k values are nearly equally spaced for every k. Scaling by n and dropping repeats gives the permutation;
    with ``2**ceil(log2 n) >= n`` steps of size ``n / 2**bits <= 1`` every integer is hit.

    Returns a LongTensor of shape (n,), a new one each call (the order itself is computed once per n: every noise
    plan asks for it, and a run that draws a thousand plans a second would spend its host time here).
    """
    return torch.tensor(_van_der_corput_order(n), dtype=torch.long)


@lru_cache(maxsize=64)
def _van_der_corput_order(n: int) -> tuple[int, ...]:
    if n <= 0:
        return ()
    bits = max(1, math.ceil(math.log2(n)))
    seen, order = set(), []
    for j in range(2**bits):
        mirrored = int(format(j, f"0{bits}b")[::-1], 2)
        idx = (mirrored * n) >> bits
        if idx not in seen:
            seen.add(idx)
            order.append(idx)
    return tuple(order)


def even_grid(n: int, lo: int, hi: int) -> torch.Tensor:
    """Midpoints of n equal bins of ``[lo, hi)``: ``t_i = lo + floor((i + 1/2) (hi - lo) / n)``, i = 0..n-1.

    With ``lo=0, hi=1000`` and n=1000 this is every timestep; with n=10 it is 50, 150, ..., 950. Midpoints
    avoid both ends, where the error is uninformative (t near 0: almost no noise; t near T: almost no signal).
    When n exceeds the number of timesteps the grid wraps around, so t repeats with fresh noise.
    """
    i = torch.arange(n, dtype=torch.float64)
    width = hi - lo
    t = lo + torch.floor((i + 0.5) * width / n).long()
    return t


def _check(n_trials: int, num_timesteps: int) -> None:
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}.")
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}.")


def uniform(n_trials: int, *, num_timesteps: int = 1000, generator: torch.Generator | None = None) -> torch.Tensor:
    """t drawn i.i.d. uniformly from all timesteps: the unbiased ELBO estimator, but the noisiest one."""
    _check(n_trials, num_timesteps)
    if generator is None:
        raise ValueError("the 'uniform' strategy is random: pass a torch.Generator so runs are reproducible.")
    return torch.randint(0, num_timesteps, (n_trials,), generator=generator)


def even(n_trials: int, *, num_timesteps: int = 1000, generator: torch.Generator | None = None) -> torch.Tensor:
    """n evenly spaced timesteps (bin midpoints, see ``even_grid``), in low-discrepancy order.

    The paper's best strategy (Fig. 4): stratified sampling of t removes the variance that comes from
    which t happened to be drawn, at the price of a bias of order 1/n in the timestep integral.
    """
    _check(n_trials, num_timesteps)
    grid = even_grid(n_trials, 0, num_timesteps)
    return grid[van_der_corput_order(n_trials)]


def middle(n_trials: int, *, num_timesteps: int = 1000, generator: torch.Generator | None = None) -> torch.Tensor:
    """n evenly spaced timesteps inside the middle half ``[T/4, 3T/4)``, low-discrepancy order.

    Fig. 3 of the paper shows single-t accuracy peaks in the middle of the schedule; this strategy spends
    every trial there. It is a biased estimate of the ELBO (the ends are ignored) traded for lower variance.
    """
    _check(n_trials, num_timesteps)
    grid = even_grid(n_trials, num_timesteps // 4, 3 * num_timesteps // 4)
    return grid[van_der_corput_order(n_trials)]


def logit_normal(n_trials: int, *, num_timesteps: int = 1000, generator: torch.Generator | None = None,
                 mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """n timesteps at evenly spaced quantiles of the logit-normal density SD 3 trains with (Esser et al. 2024:
    u = sigmoid(mean + std z), z standard normal, t = floor(u T)), in low-discrepancy order.

    The stratified counterpart of drawing t as SD 3's training did: the denoising error then averages over t
    with the weight the model was trained under (more trials at middle times, 73 % of them inside the middle half
    for mean 0, std 1), where ``even`` weights every t alike. For a flow-matching model the grid index maps to
    its shifted time (``processes.RectifiedFlow``), as SD 3's training indexes its shifted schedule.
    """
    _check(n_trials, num_timesteps)
    q = (torch.arange(n_trials, dtype=torch.float64) + 0.5) / n_trials
    u = torch.sigmoid(mean + std * math.sqrt(2) * torch.erfinv(2 * q - 1))
    t = torch.clamp(torch.floor(u * num_timesteps).long(), 0, num_timesteps - 1)
    return t[van_der_corput_order(n_trials)]


def fixed(values: Sequence[int]) -> TimestepStrategy:
    """A strategy that cycles through a fixed set of timesteps; each repeat gets fresh noise.

    ``fixed((500,))`` is the paper's {500}; ``fixed((0, 500, 999))`` its {0, 500, 1000} (1000 is the last
    index, 999, here); ``fixed((475, 500, 525))`` its narrow window.
    """
    values = tuple(int(v) for v in values)
    if not values:
        raise ValueError("a fixed timestep set needs at least one value.")

    def strategy(n_trials: int, *, num_timesteps: int = 1000, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(n_trials, num_timesteps)
        bad = [v for v in values if not 0 <= v < num_timesteps]
        if bad:
            raise ValueError(f"timesteps {bad} are outside [0, {num_timesteps}); use 0-based indices.")
        return torch.tensor(values, dtype=torch.long).repeat(math.ceil(n_trials / len(values)))[:n_trials]

    strategy.deterministic = True
    strategy.__name__ = "fixed_" + "_".join(map(str, values))
    strategy.__doc__ = f"Cycle through t in {values} with fresh noise each repeat."
    return strategy


# The strategies whose timesteps depend on (n_trials, num_timesteps) alone, not on the generator: a noise plan may
# reuse them for every image (``noise.plan_timesteps``). A strategy without the mark counts as random.
for _strategy in (even, middle, logit_normal):
    _strategy.deterministic = True


def is_deterministic(strategy: TimestepStrategy) -> bool:
    """Whether ``strategy`` ignores its generator (marked ``deterministic``): the same timesteps for every image."""
    return getattr(strategy, "deterministic", False)


TIMESTEP_STRATEGIES: dict[str, TimestepStrategy] = {
    "uniform": uniform,
    "even": even,
    "middle": middle,
    "logit_normal": logit_normal,
    "fixed_500": fixed((500,)),
    "fixed_0_500_999": fixed((0, 500, 999)),
    "fixed_475_500_525": fixed((475, 500, 525)),
}


def get_strategy(name: str) -> TimestepStrategy:
    """Look a strategy up by name, with the list of valid names in the error."""
    try:
        return TIMESTEP_STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown timestep strategy {name!r}; choose one of {sorted(TIMESTEP_STRATEGIES)}."
        ) from None
