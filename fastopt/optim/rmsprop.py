"""``fastopt.RMSprop``: torch.optim.RMSprop on :func:`fastopt.rmsprop_step`."""
from __future__ import annotations

from fastopt import _validate as v
from fastopt._specs import KERNELS
from fastopt.optim import _eightbit, _mixed
from fastopt.optim.optimizer import Optimizer
from fastopt.functional.optim import rmsprop_step


class RMSprop(Optimizer):
    """``torch.optim.RMSprop``: ``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8,
    weight_decay=0, momentum=0, centered=False, maximize=False)``.
    State: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered)."""

    _sr_step = True    # stochastic_rounding needs the step count

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False, backend="auto", state_bits=32,
                 master_weights=False, state_dtype=None,
                 stochastic_rounding=False, seed=0):
        self.state_bits = _eightbit.bits(state_bits)
        self._mp = _mixed.settings(master_weights, state_dtype, stochastic_rounding, seed)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize),
                         backend)

    def _check_group(self, g):
        v.group(KERNELS["rmsprop_step"], g)

    def _state_names(self, g):
        names = ["square_avg"]
        if g["momentum"] > 0:
            names.append("momentum_buffer")
        if g["centered"]:
            names.append("grad_avg")
        return names

    def _fast_update(self, mod, g, lr, key, params, grads, states, **mixed):
        mom = float(g["momentum"])
        mod.rmsprop(params, grads, states["square_avg"],
                    states["grad_avg"] if g["centered"] else None,
                    states["momentum_buffer"] if mom > 0.0 else None, lr=lr,
                    alpha=float(g["alpha"]), eps=float(g["eps"]),
                    weight_decay=float(g["weight_decay"]), momentum=mom,
                    maximize=bool(g["maximize"]), **mixed)

    def _update(self, g, lr, key, params, grads, states, **mixed):
        rmsprop_step(params, grads, states["square_avg"], lr=lr, alpha=g["alpha"], eps=g["eps"],
                     weight_decay=g["weight_decay"], momentum=g["momentum"],
                     momentum_buffer=states.get("momentum_buffer"), centered=g["centered"],
                     grad_avg=states.get("grad_avg"), maximize=g["maximize"], backend=self.backend, **mixed)
