"""The gradient check of the whole network, before training (``fastopt.gradcheck``).

The function checked is the training-mode loss of the demo's network on a
small fixed batch, in float64, with the dropout masks of a fixed seed (so
the function is deterministic) and scratch copies of the running statistics
(so evaluating it changes nothing). Its analytic gradient is the network's
backward pass: NumPy for the linear layers and the loss, fastopt's
``batch_norm_backward`` and ``dropout_backward`` on the chosen backend.
A whole network has ~85k parameters, so a random sample of ``max_checks``
elements of every parameter array is compared with centered differences.

A pixel that is constant over the checked batch (the blank borders, or a
pixel inked in a handful of training images) feeds every sample the same
value, which batch norm's mean subtraction removes: its row of ``W1`` has a
gradient that is exactly 0 in exact arithmetic (``sum_n dx_n = 0``) and
~1e-18 in floating point. Comparing that with a finite-difference noise of
~1e-11 reads as a relative error of 1 (it passes only on ``atol``), so those
rows are held fixed and ``W1`` is checked on the rows of the other ("live")
pixels.
"""
from __future__ import annotations

import numpy as np

from fastopt.demo.model import MLP, softmax_cross_entropy

# ReLU has a kink at 0: an element whose +-h perturbation crosses it compares at
# ~1e-4 at worst (lecture notes); away from kinks float64 reaches ~1e-8.
RTOL = 1e-5
ATOL = 1e-8


def check_network(model: MLP, X, y, *, seed=0, step=0, batch=16, max_checks=20, h=1e-5):
    """Gradient check of ``model`` (copied to float64) on ``batch`` rows of ``X``.

    Returns the :class:`fastopt.gradcheck.GradcheckResult`.
    """
    from fastopt.gradcheck import gradcheck

    rng = np.random.default_rng([seed % 2**64, 3])
    idx = np.sort(rng.choice(X.shape[0], size=min(batch, X.shape[0]), replace=False))
    Xb = np.ascontiguousarray(X[idx], dtype=np.float64)
    yb = y[idx]
    net = model.astype(np.float64)

    def scratch_running():
        return [(m.copy(), v.copy()) for m, v in net.running]

    live = np.flatnonzero(np.ptp(Xb, axis=0) > 0)     # pixels that vary over the batch
    W1 = net.params[0].copy()

    def full(params):
        W = W1.copy()
        W[live] = params[0]
        return [W] + list(params[1:])

    def loss_of(*params):
        net.params = full(params)
        scores, _ = net.forward(Xb, training=True, step=step, running=scratch_running())
        return softmax_cross_entropy(scores, yb)[0]

    net.params = [p.copy() for p in net.params]
    scores, cache = net.forward(Xb, training=True, step=step, running=scratch_running())
    _, dscores = softmax_cross_entropy(scores, yb)
    grads = net.backward(dscores, cache)
    params = [W1[live]] + [p.copy() for p in net.params[1:]]
    grads = [grads[0][live]] + grads[1:]
    names = [f"W1[{live.size} live rows]"] + list(net.names[1:])
    return gradcheck(loss_of, params, grads, h=h, rtol=RTOL, atol=ATOL, max_checks=max_checks,
                     seed=seed % 2**32, names=names, top=3)
