"""``fastopt.Adam`` and ``fastopt.AdamW``: torch.optim.Adam / AdamW on :func:`fastopt.adam_step`."""
from __future__ import annotations

from fastopt import _validate as v
from fastopt._specs import KERNELS
from fastopt.optim import _eightbit, _mixed
from fastopt.optim.optimizer import Optimizer
from fastopt.functional.optim import adam_step


class Adam(Optimizer):
    """``torch.optim.Adam``: ``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=0, amsgrad=False, maximize=False)``, each group in one
    :func:`fastopt.adam_step` call. State: ``step``, ``exp_avg``, ``exp_avg_sq``,
    ``max_exp_avg_sq`` (amsgrad)."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, backend="auto", state_bits=32,
                 master_weights=False, state_dtype=None,
                 stochastic_rounding=False, seed=0):
        self.state_bits = _eightbit.bits(state_bits, amsgrad)
        self._mp = _mixed.settings(master_weights, state_dtype, stochastic_rounding, seed)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize), backend)

    def _check_group(self, g):
        v.group(KERNELS["adam_step"], g)
        g["betas"] = tuple(g["betas"])

    def _state_names(self, g):
        return ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] if g["amsgrad"] else ["exp_avg", "exp_avg_sq"]

    def _fast_update(self, mod, g, lr, key, params, grads, states, **mixed):
        beta1, beta2 = g["betas"]
        mod.adam(params, grads, states["exp_avg"], states["exp_avg_sq"],
                 states["max_exp_avg_sq"] if g["amsgrad"] else None, step=key + 1, lr=lr,
                 beta1=float(beta1), beta2=float(beta2), eps=float(g["eps"]),
                 weight_decay=float(g["weight_decay"]), decoupled=self._decoupled,
                 maximize=bool(g["maximize"]), **mixed)

    def _update(self, g, lr, key, params, grads, states, **mixed):
        beta1, beta2 = g["betas"]
        adam_step(params, grads, states["exp_avg"], states["exp_avg_sq"], step=key + 1, lr=lr,
                  beta1=beta1, beta2=beta2, eps=g["eps"], weight_decay=g["weight_decay"],
                  decoupled_weight_decay=self._decoupled, amsgrad=g["amsgrad"],
                  max_exp_avg_sq=states.get("max_exp_avg_sq"), maximize=g["maximize"],
                  backend=self.backend, **mixed)


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay (``param *= 1 - lr * wd``
    first); ``weight_decay`` defaults to ``1e-2``."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, backend="auto", state_bits=32,
                 master_weights=False, state_dtype=None,
                 stochastic_rounding=False, seed=0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, backend=backend,
                         state_bits=state_bits, master_weights=master_weights,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding,
                         seed=seed)
