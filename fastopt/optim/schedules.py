"""Learning-rate schedules: small callables ``t -> lr``.

**Step convention: 0-based.** ``t`` is the number of optimizer updates
already done, so the first update uses ``schedule(0)``, the k-th (1-based)
update ``schedule(k - 1)``. This is ``torch.optim.lr_scheduler``'s
``last_epoch`` when ``scheduler.step()`` is called once after every
``optimizer.step()``: ``schedule(t)`` equals ``optimizer.param_groups[0]["lr"]``
after ``t`` scheduler steps. A fastopt optimizer given ``lr=schedule`` calls it
with its count of completed ``step()`` calls (0 on the first).

Every class has its closed form in its docstring. Compose with
:class:`Sequential` (``torch.optim.lr_scheduler.SequentialLR``) or use
:func:`warmup_cosine`. Any callable ``t -> float`` works as a schedule too.
"""
from __future__ import annotations

import bisect
import math

from fastopt import _validate as v

__all__ = ["Constant", "StepDecay", "ExponentialDecay", "InverseTimeDecay", "LinearWarmup",
           "CosineAnnealing", "Cyclical", "CosineWarmRestarts", "Sequential", "warmup_cosine"]


def _t(t):
    if isinstance(t, bool) or not isinstance(t, (int,)) and not hasattr(t, "__index__"):
        raise TypeError(f"schedule step must be an int, got {type(t).__name__}")
    t = int(t)
    if t < 0:
        raise ValueError(f"schedule step must be >= 0, got {t}")
    return t


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Invalid {name} value: {value!r} (must be an int >= 1)")
    return value


class Schedule:
    """Base class: ``__call__(t)`` with ``t`` the 0-based update count."""

    def __call__(self, t: int) -> float:
        return self.lr_at(_t(t))

    def lr_at(self, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={val!r}" for k, val in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``lr(t) = lr``."""

    def __init__(self, lr):
        self.lr = v.at_least("lr", lr)

    def lr_at(self, t):
        return self.lr


class StepDecay(Schedule):
    """Step decay: ``lr(t) = lr * gamma ** (t // step_size)`` (torch ``StepLR``).

    The lecture notes' "reduce the learning rate by a factor every few epochs",
    e.g. ``StepDecay(0.1, step_size=5 * steps_per_epoch, gamma=0.5)``.
    """

    def __init__(self, lr, step_size, gamma=0.1):
        self.lr = v.at_least("lr", lr)
        self.step_size = _positive_int("step_size", step_size)
        self.gamma = v.at_least("gamma", gamma)

    def lr_at(self, t):
        return self.lr * self.gamma ** (t // self.step_size)


class ExponentialDecay(Schedule):
    """Exponential decay: ``lr(t) = lr * gamma ** t`` (torch ``ExponentialLR``).

    The lecture notes' ``alpha = alpha0 * exp(-k t)`` is ``gamma = exp(-k)``:
    pass ``k=`` instead of ``gamma=`` to use that form.
    """

    def __init__(self, lr, gamma=None, *, k=None):
        self.lr = v.at_least("lr", lr)
        if (gamma is None) == (k is None):
            raise ValueError("pass exactly one of gamma and k")
        self.gamma = v.at_least("gamma", gamma) if gamma is not None else None
        self.k = v.finite("k", k) if k is not None else None

    def lr_at(self, t):
        if self.k is not None:
            return self.lr * math.exp(-self.k * t)
        return self.lr * self.gamma ** t


class InverseTimeDecay(Schedule):
    """1/t decay: ``lr(t) = lr / (1 + k * t)`` (the lecture notes' form; torch
    has it only as ``LambdaLR(lambda t: 1 / (1 + k * t))``)."""

    def __init__(self, lr, k):
        self.lr = v.at_least("lr", lr)
        self.k = v.at_least("k", k)

    def lr_at(self, t):
        return self.lr / (1.0 + self.k * t)


class LinearWarmup(Schedule):
    """Linear warm-up (torch ``LinearLR(start_factor, end_factor, total_iters=warmup_steps)``)::

        lr(t) = lr * (start_factor + (end_factor - start_factor) * min(t, warmup_steps) / warmup_steps)

    It climbs from ``start_factor * lr`` at ``t = 0`` to ``end_factor * lr`` at
    ``t = warmup_steps`` and stays there.
    """

    def __init__(self, lr, warmup_steps, start_factor=1.0 / 3, end_factor=1.0):
        self.lr = v.at_least("lr", lr)
        self.warmup_steps = _positive_int("warmup_steps", warmup_steps)
        self.start_factor = v.unit_interval("start_factor", start_factor, closed_right=True)
        self.end_factor = v.unit_interval("end_factor", end_factor, closed_right=True)

    def lr_at(self, t):
        frac = min(t, self.warmup_steps) / self.warmup_steps
        return self.lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class CosineAnnealing(Schedule):
    """Cosine annealing (torch ``CosineAnnealingLR(T_max, eta_min)``)::

        lr(t) = eta_min + (lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    Beyond ``T_max`` the cosine continues (back up to ``lr`` at ``2 T_max``),
    as torch's does; use :class:`CosineWarmRestarts` for restarts or
    :class:`Sequential` to hold ``eta_min``.
    """

    def __init__(self, lr, T_max, eta_min=0.0):
        self.lr = v.at_least("lr", lr)
        self.T_max = _positive_int("T_max", T_max)
        self.eta_min = v.at_least("eta_min", eta_min)

    def lr_at(self, t):
        return self.eta_min + (self.lr - self.eta_min) * (1.0 + math.cos(math.pi * t / self.T_max)) / 2.0


class Cyclical(Schedule):
    """Cyclical learning rate, triangular policy (torch ``CyclicLR(base_lr, max_lr,
    step_size_up, step_size_down, mode="triangular")``; Smith 2017)::

        cycle = floor(1 + t / (up + down)) ;  x = 1 + t / (up + down) - cycle
        scale = x / r if x <= r else (x - 1) / (r - 1)      with r = up / (up + down)
        lr(t) = base_lr + (max_lr - base_lr) * scale * f(cycle)

    ``f = 1`` (``mode="triangular"``) or ``1 / 2**(cycle - 1)``
    (``"triangular2"``, each cycle's amplitude halved). The rate bounces between
    the two thresholds and restarts every ``up + down`` steps (the lecture
    notes' cyclical rate; ``step_size_down=0`` gives the saw-tooth restart that
    climbs to ``max_lr`` and drops back to ``base_lr`` at once).
    """

    def __init__(self, base_lr, max_lr, step_size_up=2000, step_size_down=None,
                 mode="triangular"):
        self.base_lr = v.at_least("base_lr", base_lr)
        self.max_lr = v.at_least("max_lr", max_lr)
        self.step_size_up = _positive_int("step_size_up", step_size_up)
        if step_size_down is None:
            step_size_down = step_size_up
        if isinstance(step_size_down, bool) or not isinstance(step_size_down, int) or step_size_down < 0:
            raise ValueError(f"Invalid step_size_down value: {step_size_down!r} (must be an int >= 0)")
        self.step_size_down = step_size_down
        if mode not in ("triangular", "triangular2"):
            raise ValueError(f"mode must be 'triangular' or 'triangular2', got {mode!r}")
        self.mode = mode

    def lr_at(self, t):
        total = self.step_size_up + self.step_size_down
        ratio = self.step_size_up / total
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        amplitude = 1.0 if self.mode == "triangular" else 1.0 / (2.0 ** (cycle - 1))
        return self.base_lr + (self.max_lr - self.base_lr) * scale * amplitude


class CosineWarmRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR; torch ``CosineAnnealingWarmRestarts(T_0,
    T_mult, eta_min)``): within a period of length ``T_i`` (``T_0``, then
    ``T_0 * T_mult``, ...), ``lr = eta_min + (lr - eta_min) * (1 + cos(pi * t_cur / T_i)) / 2``;
    at the end of each period the rate jumps back to ``lr``."""

    def __init__(self, lr, T_0, T_mult=1, eta_min=0.0):
        self.lr = v.at_least("lr", lr)
        self.T_0 = _positive_int("T_0", T_0)
        self.T_mult = _positive_int("T_mult", T_mult)
        self.eta_min = v.at_least("eta_min", eta_min)

    def lr_at(self, t):
        T_i, t_cur = self.T_0, t
        if self.T_mult == 1:
            t_cur = t % self.T_0
        else:
            while t_cur >= T_i:
                t_cur -= T_i
                T_i *= self.T_mult
        return self.eta_min + (self.lr - self.eta_min) * (1.0 + math.cos(math.pi * t_cur / T_i)) / 2.0


class Sequential(Schedule):
    """Runs ``schedules[0]`` until ``milestones[0]``, then ``schedules[1]`` from its own
    ``t = 0``, and so on (torch ``SequentialLR``)::

        i = number of milestones <= t ;  lr(t) = schedules[i](t - milestones[i-1])
    """

    def __init__(self, schedules, milestones):
        self.schedules = list(schedules)
        self.milestones = [int(m) for m in milestones]
        if len(self.milestones) != len(self.schedules) - 1:
            raise ValueError(f"Sequential needs len(schedules) - 1 milestones; got "
                             f"{len(self.schedules)} schedules and {len(self.milestones)} milestones")
        if any(not callable(s) for s in self.schedules):
            raise TypeError("every schedule must be callable t -> lr")
        if self.milestones != sorted(self.milestones) or any(m < 0 for m in self.milestones):
            raise ValueError(f"milestones must be non-negative and increasing, got {self.milestones}")

    def lr_at(self, t):
        i = bisect.bisect_right(self.milestones, t)
        start = self.milestones[i - 1] if i else 0
        return self.schedules[i](t - start)


def warmup_cosine(lr, warmup_steps, total_steps, eta_min=0.0, start_factor=1.0 / 3):
    """Linear warm-up for ``warmup_steps`` then cosine annealing to ``eta_min`` at
    ``total_steps``: ``Sequential([LinearWarmup(...), CosineAnnealing(lr,
    total_steps - warmup_steps, eta_min)], [warmup_steps])``."""
    warmup_steps = _positive_int("warmup_steps", warmup_steps)
    if not isinstance(total_steps, int) or total_steps <= warmup_steps:
        raise ValueError(f"Invalid total_steps value: {total_steps!r} (must be > warmup_steps)")
    return Sequential([LinearWarmup(lr, warmup_steps, start_factor=start_factor),
                       CosineAnnealing(lr, total_steps - warmup_steps, eta_min)],
                      [warmup_steps])
