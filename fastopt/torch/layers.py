"""torch layers on fastopt's kernels: ``BatchNorm1d/2d/3d``, ``Dropout``, their functional
forms and :func:`convert`.

The modules subclass torch's (``fastopt.torch.BatchNorm2d`` *is a*
``torch.nn.BatchNorm2d``): same constructor, parameters and buffers
(``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``), state dicts, input-dimension errors, ``repr`` and
train/eval behaviour; only ``forward`` differs, running the ``torch.ops.fastopt``
custom ops of :mod:`fastopt.torch.ops` (in eager mode the same kernels are
called without the dispatcher's Python overhead).

>>> model = fastopt.torch.convert(model)        # torch.nn.BatchNormXd / Dropout -> fastopt's
>>> y = fastopt.torch.dropout(x, 0.2, training=True)
"""
from __future__ import annotations

import torch

from fastopt.torch import ops as _ops

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Dropout", "batch_norm", "dropout",
           "convert"]


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps,
                count=None):
    if training:
        size = input.shape
        m = size[0]
        for s in size[2:]:
            m *= s
        if m == 1:   # torch's message (torch.nn.functional._verify_batch_size)
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {size}")
        return _ops.batch_norm_train_(input, weight, bias, running_mean, running_var, count,
                                      momentum, eps)
    if running_mean is None or running_var is None:
        raise ValueError("fastopt.torch.batch_norm: training=False normalizes with running_mean "
                         "and running_var, which cannot be None")
    return _ops.batch_norm_eval_(input, weight, bias, running_mean, running_var, eps)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """``torch.nn.functional.batch_norm`` on fastopt's kernels (same signature, same result).

    Per channel ``c`` over the batch and spatial axes (``M`` values)::

        training: mean, var = batch mean and biased variance of x[:, c]
                  running_mean = (1 - momentum) * running_mean + momentum * mean     (in place)
                  running_var  = (1 - momentum) * running_var + momentum * var * M / (M - 1)
        eval:     mean, var = running_mean, running_var
        y = (x - mean) / sqrt(var + eps) * weight + bias

    ``running_mean``/``running_var`` may be None in training (nothing tracked).
    ``weight``/``bias`` None mean 1 and 0. Differentiable (fastopt's backward
    kernel); traced by ``torch.compile`` without a graph break.

    >>> y = fastopt.torch.batch_norm(x, rm, rv, w, b, training=True)
    """
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def dropout(input, p=0.5, training=True, inplace=False):
    """``torch.nn.functional.dropout`` on fastopt's kernels: inverted dropout.

    ``y = x * keep / (1 - p)`` with ``keep`` drawn with probability ``1 - p``
    per element; the mask is fastopt's bit-packed Philox mask of a seed drawn
    from torch's default (CPU) generator, so ``torch.manual_seed`` makes runs
    reproducible (the bits differ from torch's own dropout). Autograd saves
    the 1-bit mask (``numel / 8`` bytes, 32x less than a float mask). Eval,
    ``p == 0`` or an empty ``input`` return ``input`` itself, as torch does.
    ``inplace=True`` writes the result into ``input`` (computed out of place
    first: it saves no memory).

    >>> y = fastopt.torch.dropout(x, 0.5, training=True)
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0 or input.numel() == 0:
        return input
    # an int64 in [0, 2**63): one draw from torch's generator per call
    seed = torch.randint(0, 2**63 - 1, (), dtype=torch.int64)
    y = _ops.call("dropout", input, float(p), seed)[0]
    if inplace:
        return input.copy_(y)
    return y


class _BatchNorm:
    """forward() of fastopt's batch norm modules; the rest is torch's ``_BatchNorm``."""

    def forward(self, input):
        self._check_input_dim(input)
        # torch.nn.modules.batchnorm._BatchNorm.forward, line for line
        momentum = 0.0 if self.momentum is None else self.momentum
        count = None
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                count = self.num_batches_tracked   # 1 / count, read inside the op
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return _batch_norm(input, self.running_mean if track else None,
                           self.running_var if track else None, self.weight, self.bias,
                           bn_training, momentum, self.eps, count)


class BatchNorm1d(_BatchNorm, torch.nn.BatchNorm1d):
    """``torch.nn.BatchNorm1d`` (input ``(N, C)`` or ``(N, C, L)``) on fastopt's kernels.

    Same constructor (``num_features, eps=1e-5, momentum=0.1, affine=True,
    track_running_stats=True, device=None, dtype=None``; ``momentum=None`` is
    the cumulative average), state dict and results as torch's; float32/float64, and
    float16/bfloat16 input with float32 or 16-bit parameters (docs/mixed-precision-layers.md).

    >>> bn = fastopt.torch.BatchNorm1d(64); bn.load_state_dict(torch_bn.state_dict())
    """


class BatchNorm2d(_BatchNorm, torch.nn.BatchNorm2d):
    """``torch.nn.BatchNorm2d`` (input ``(N, C, H, W)``) on fastopt's kernels; see
    :class:`BatchNorm1d`."""


class BatchNorm3d(_BatchNorm, torch.nn.BatchNorm3d):
    """``torch.nn.BatchNorm3d`` (input ``(N, C, D, H, W)``) on fastopt's kernels; see
    :class:`BatchNorm1d`."""


class Dropout(torch.nn.Dropout):
    """``torch.nn.Dropout(p=0.5, inplace=False)`` on fastopt's kernels; see :func:`dropout`.

    >>> drop = fastopt.torch.Dropout(0.2)
    """

    def forward(self, input):
        return dropout(input, self.p, self.training, self.inplace)


_SWAPS = {torch.nn.BatchNorm1d: BatchNorm1d, torch.nn.BatchNorm2d: BatchNorm2d,
          torch.nn.BatchNorm3d: BatchNorm3d, torch.nn.Dropout: Dropout}


def _swapped(m):
    """A fastopt module holding ``m``'s state itself: the same Parameter and buffer
    tensors (optimizers built on ``m`` keep working), flags and hooks."""
    new = _SWAPS[type(m)].__new__(_SWAPS[type(m)])
    new.__dict__.update({k: (v.copy() if isinstance(v, dict) else v)
                         for k, v in m.__dict__.items()})
    return new


def convert(module):
    """Replaces, in place, every ``torch.nn.BatchNorm1d/2d/3d`` and ``torch.nn.Dropout``
    inside ``module`` (exactly those classes, not subclasses of them) by fastopt's,
    keeping parameters (the same ``Parameter`` objects), buffers, train/eval mode and
    hooks; a module used at several places stays one module. Returns ``module`` (or its
    replacement, when ``module`` itself is one of those classes).

    >>> model = fastopt.torch.convert(torchvision.models.resnet18())
    """
    return _convert(module, {})


def _convert(module, done):
    if type(module) in _SWAPS:
        if id(module) not in done:
            done[id(module)] = _swapped(module)
        return done[id(module)]
    if id(module) in done:
        return module
    done[id(module)] = module
    # _modules, not named_children(): that yields a child held under two names once
    for name, child in list(module._modules.items()):
        new = child if child is None else _convert(child, done)
        if new is not child:
            setattr(module, name, new)
    return module
