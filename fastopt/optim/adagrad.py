"""``fastopt.Adagrad``: torch.optim.Adagrad on :func:`fastopt.adagrad_step`."""
from __future__ import annotations

from fastopt import _validate as v
from fastopt._specs import KERNELS
from fastopt.optim import _mixed
from fastopt.optim.optimizer import Optimizer
from fastopt.functional.optim import adagrad_step


class Adagrad(Optimizer):
    """``torch.optim.Adagrad``: ``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0,
    initial_accumulator_value=0, eps=1e-10, maximize=False)``. Like torch, the state
    (``step`` = 0, ``sum`` = ``initial_accumulator_value``) exists from construction."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False, backend="auto",
                 master_weights=False, state_dtype=None,
                 stochastic_rounding=False, seed=0):
        self._mp = _mixed.settings(master_weights, state_dtype, stochastic_rounding, seed)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize), backend)
        self._after_reset()

    def _after_reset(self):
        for gi, g in enumerate(self.param_groups):
            lo, hi = self._ranges[gi]
            for i, st in zip(range(lo, hi), self._init_states(g, self._params[lo:hi])):
                self.state[i] = st
            self._replan(gi)

    def _requires_state(self):
        return True

    def _check_group(self, g):
        v.group(KERNELS["adagrad_step"], g)

    def _state_names(self, g):
        return ["sum"]

    def _fill_value(self, g):
        return float(g["initial_accumulator_value"])

    def _fast_update(self, mod, g, lr, key, params, grads, states, **mixed):
        mod.adagrad(params, grads, states["sum"], step=key + 1, lr=lr,
                    lr_decay=float(g["lr_decay"]), eps=float(g["eps"]),
                    weight_decay=float(g["weight_decay"]), maximize=bool(g["maximize"]), **mixed)

    def _update(self, g, lr, key, params, grads, states, **mixed):
        adagrad_step(params, grads, states["sum"], step=key + 1, lr=lr, lr_decay=g["lr_decay"],
                     eps=g["eps"], weight_decay=g["weight_decay"], maximize=g["maximize"],
                     backend=self.backend, **mixed)
