"""``fastopt.SGD``: torch.optim.SGD on :func:`fastopt.sgd_step`."""
from __future__ import annotations

from fastopt import _validate as v
from fastopt._specs import KERNELS
from fastopt.optim import _eightbit, _mixed
from fastopt.optim.optimizer import Optimizer
from fastopt.functional.optim import sgd_step


class SGD(Optimizer):
    """``torch.optim.SGD``: ``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
    nesterov=False, maximize=False)``, each group in one :func:`fastopt.sgd_step` call.
    State (torch's): ``momentum_buffer`` when ``momentum != 0``; no ``step``."""

    _exports_step = False

    _sr_step = True    # stochastic_rounding needs the step count

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, backend="auto", state_bits=32,
                 master_weights=False, state_dtype=None,
                 stochastic_rounding=False, seed=0):
        self.state_bits = _eightbit.bits(state_bits)
        self._mp = _mixed.settings(master_weights, state_dtype, stochastic_rounding, seed)
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize), backend)

    def _check_group(self, g):
        v.group(KERNELS["sgd_step"], g)

    def _state_names(self, g):
        return ["momentum_buffer"] if g["momentum"] != 0 else []

    def _key(self, steps):
        return min(steps, 1)   # only "first momentum step or not" matters

    def _fast_update(self, mod, g, lr, key, params, grads, states, **mixed):
        mom = float(g["momentum"])
        mod.sgd(params, grads, states["momentum_buffer"] if mom != 0.0 else None, lr=lr,
                momentum=mom, dampening=float(g["dampening"]),
                weight_decay=float(g["weight_decay"]), nesterov=bool(g["nesterov"]),
                maximize=bool(g["maximize"]), first_step=key == 0, **mixed)

    def _update(self, g, lr, key, params, grads, states, **mixed):
        sgd_step(params, grads, states.get("momentum_buffer"), lr=lr, momentum=g["momentum"],
                 dampening=g["dampening"], weight_decay=g["weight_decay"],
                 nesterov=g["nesterov"], maximize=g["maximize"], first_step=key == 0,
                 backend=self.backend, **mixed)
