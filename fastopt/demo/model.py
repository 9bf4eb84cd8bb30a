"""The network: an MLP with batch norm before each ReLU and inverted dropout after it.

::

    x -> [Linear (no bias) -> BatchNorm -> ReLU -> Dropout] x len(hidden) -> Linear -> softmax CE

The linear layers and the softmax cross-entropy loss are plain NumPy (matrix
products); batch norm and dropout, forward and backward, are fastopt's kernels
on the chosen backend. The hidden linear layers carry no bias: batch norm
subtracts the batch mean right after, so a bias there would have an exactly
zero gradient (batch norm's ``beta`` plays its role).

Initialization is He (Kaiming) normal: ``W = randn(fan_in, fan_out) *
sqrt(2 / fan_in)``. The lecture notes' argument (keep ``Var(z) = Var(x)``
from layer to layer) gives ``n Var(w) = 1``; a ReLU zeroes half of its inputs,
which halves the variance, hence ``2 / n`` (He et al. 2015). ``gamma = 1``,
``beta = 0``, output bias 0.

Training mode normalizes with the batch statistics (and updates the running
ones); eval mode uses the running statistics and no dropout.
"""
from __future__ import annotations

import numpy as np

import fastopt


def dropout_seed(seed: int, step: int, layer: int) -> int:
    """The dropout seed of hidden layer ``layer`` at update ``step``: a
    deterministic, well-mixed 64-bit function of ``(seed, step, layer)``
    (NumPy's ``SeedSequence`` hash), so every run with one ``--seed`` draws the
    same masks, on every backend."""
    return int(np.random.SeedSequence([seed % 2**64, step, layer]).generate_state(1, np.uint64)[0])


def softmax_cross_entropy(scores, y):
    """Mean softmax cross-entropy of ``scores`` (N, C) for labels ``y``, and its
    gradient with respect to ``scores``: ``(softmax - onehot) / N``."""
    n = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_z
    loss = -float(log_probs[np.arange(n), y].astype(np.float64).mean())
    dscores = np.exp(log_probs)
    dscores[np.arange(n), y] -= 1
    dscores /= n
    return loss, dscores


class MLP:
    """``sizes = (n_in, h1, ..., n_out)``; ``p_drop`` is dropout's **drop** probability.

    ``params`` is the list of trainable arrays, in the order of ``names``
    (``W1, gamma1, beta1, W2, gamma2, beta2, ..., W_out, b_out``); ``grads``
    returned by :meth:`backward` follow the same order. The arrays are updated in
    place by the optimizers, so ``params`` stays valid.
    """

    def __init__(self, sizes=(64, 256, 256, 10), p_drop=0.2, *, seed=0, dtype=np.float32,
                 backend="auto", bn_momentum=0.1, bn_eps=1e-5):
        self.sizes = tuple(int(s) for s in sizes)
        self.p_drop = float(p_drop)
        self.dtype = np.dtype(dtype)
        self.backend = backend
        self.bn_momentum, self.bn_eps = bn_momentum, bn_eps
        self.seed = seed
        rng = np.random.default_rng([seed % 2**64, 1])
        self.params, self.names = [], []
        self.running = []     # (running_mean, running_var) per hidden layer
        n_hidden = len(self.sizes) - 2
        for l in range(n_hidden + 1):
            fan_in, fan_out = self.sizes[l], self.sizes[l + 1]
            W = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)   # He init
            self._add(f"W{l + 1}", W)
            if l < n_hidden:
                self._add(f"gamma{l + 1}", np.ones(fan_out))
                self._add(f"beta{l + 1}", np.zeros(fan_out))
                self.running.append((np.zeros(fan_out, self.dtype), np.ones(fan_out, self.dtype)))
            else:
                self._add(f"b{l + 1}", np.zeros(fan_out))

    def _add(self, name, value):
        self.names.append(name)
        self.params.append(np.ascontiguousarray(value, dtype=self.dtype))

    @property
    def n_hidden(self) -> int:
        return len(self.sizes) - 2

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params)

    def weights(self):
        """The weight matrices (what weight decay applies to)."""
        return [p for n, p in zip(self.names, self.params) if n.startswith("W")]

    def others(self):
        """Batch-norm scales and shifts and the output bias (no weight decay)."""
        return [p for n, p in zip(self.names, self.params) if not n.startswith("W")]

    def state(self):
        """Copies of every parameter and running statistic (to restart from the same point)."""
        return ([p.copy() for p in self.params], [(m.copy(), v.copy()) for m, v in self.running])

    def load_state(self, state):
        params, running = state
        for p, q in zip(self.params, params):
            p[...] = q
        for (m, v), (m0, v0) in zip(self.running, running):
            m[...] = m0
            v[...] = v0

    def astype(self, dtype):
        """A copy of this network in ``dtype`` (same values)."""
        other = object.__new__(MLP)
        other.__dict__.update(self.__dict__)
        other.dtype = np.dtype(dtype)
        other.params = [p.astype(dtype) for p in self.params]
        other.running = [(m.astype(dtype), v.astype(dtype)) for m, v in self.running]
        return other

    # -- forward / backward -------------------------------------------------------------

    def forward(self, X, *, training, step=0, running=None):
        """Scores ``(N, n_out)`` and the cache :meth:`backward` needs.

        Training mode draws layer ``l``'s dropout mask from
        ``dropout_seed(self.seed, step, l)`` and updates the running statistics
        (``running`` replaces ``self.running``, e.g. scratch copies for a
        gradient check).
        """
        running = self.running if running is None else running
        P = self.params
        h = X
        cache = []
        for l in range(self.n_hidden):
            W, gamma, beta = P[3 * l], P[3 * l + 1], P[3 * l + 2]
            a = h @ W
            z, mean, invstd = fastopt.batch_norm_forward(
                a, gamma, beta, running[l][0], running[l][1], training=training,
                momentum=self.bn_momentum, eps=self.bn_eps, backend=self.backend)
            r = np.maximum(z, 0)
            if training and self.p_drop > 0:
                out, mask = fastopt.dropout_forward(r, self.p_drop, seed=dropout_seed(self.seed, step, l),
                                                    training=True, backend=self.backend)
            else:
                out, mask = r, None
            cache.append((h, a, mean, invstd, z, mask))
            h = out
        W, b = P[-2], P[-1]
        scores = h @ W + b
        cache.append(h)
        return scores, cache

    def backward(self, dscores, cache, *, training=True):
        """Gradients of every parameter (order of ``params``) from ``dL/dscores``."""
        P = self.params
        grads = [None] * len(P)
        h = cache[-1]
        grads[-2] = h.T @ dscores
        grads[-1] = dscores.sum(axis=0)
        dh = dscores @ P[-2].T
        for l in reversed(range(self.n_hidden)):
            h_in, a, mean, invstd, z, mask = cache[l]
            if mask is not None:
                dh = fastopt.dropout_backward(dh, mask, self.p_drop, backend=self.backend)
            dz = dh * (z > 0)
            da, dgamma, dbeta = fastopt.batch_norm_backward(
                dz, a, P[3 * l + 1], mean, invstd, training=training, backend=self.backend)
            grads[3 * l] = h_in.T @ da
            grads[3 * l + 1], grads[3 * l + 2] = dgamma, dbeta
            if l:
                dh = da @ P[3 * l].T
        return [np.ascontiguousarray(g, dtype=self.dtype) for g in grads]

    def loss_and_grads(self, X, y, *, step=0):
        """One training-mode forward and backward: ``(loss, grads)``."""
        scores, cache = self.forward(X, training=True, step=step)
        loss, dscores = softmax_cross_entropy(scores, y)
        return loss, self.backward(dscores, cache)

    def predict(self, X, batch_size=1024):
        """Class predictions in eval mode (running statistics, no dropout)."""
        out = []
        for i in range(0, X.shape[0], batch_size):
            scores, _ = self.forward(X[i:i + batch_size], training=False)
            out.append(scores.argmax(axis=1))
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def accuracy(self, X, y) -> float:
        return float((self.predict(X) == y).mean())

    def eval_loss(self, X, y) -> float:
        scores, _ = self.forward(X, training=False)
        return softmax_cross_entropy(scores, y)[0]
