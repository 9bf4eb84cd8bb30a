"""fastopt's batch norm and dropout kernels as ``torch.library`` custom ops (``torch.ops.fastopt``).

Five ops, each with a fake (meta) kernel, so ``torch.compile`` traces them
without a graph break; the three forward ops have registered autograd whose
backward is one of the two backward ops (so the compiled backward graph holds
fastopt's backward kernels too)::

    fastopt::batch_norm_train(x, weight?, bias?, running_mean?, running_var?, count?,
                              momentum, eps) -> (y, save_mean, save_invstd,
                                                 new_running_mean, new_running_var)
    fastopt::batch_norm_eval(x, weight?, bias?, running_mean, running_var, eps)
                              -> (y, save_mean, save_invstd)
    fastopt::batch_norm_backward(dy, x, weight?, save_mean, save_invstd, training,
                                 output?=None) -> (dx, dweight, dbias)
    fastopt::dropout(x, p, seed) -> (y, mask, order)   # mask: uint8, a bit per element
    fastopt::dropout_backward(dy, mask, p, order) -> dx

The ops are functional (nothing they receive is written: torch refuses registered
autograd on a mutating op), so the training op returns the updated running statistics
(``(0,)``-shaped when none are tracked) for the caller to copy into its buffers.
``count`` (``num_batches_tracked``, already incremented) selects the cumulative average
inside the op, so a compiled graph never calls ``.item()``; ``seed`` is a 0-d int64
tensor drawn from torch's generator by the caller. CPU tensors reach the cpp backend
zero-copy, CUDA tensors the cuda backend through DLPack on torch's current stream.
Batch norm reads channels-last memory as ``(M, C)`` rows, dropout any dense layout in
memory order; both return their input's layout. Eager calls on plain tensors skip the
dispatcher (:func:`call`, :func:`direct`: tens of microseconds a call), running the same
kernel functions, setup and backward in a ``torch.autograd.Function``. Layouts, dtypes
and errors: docs/torch-layers.md.
"""
from __future__ import annotations

import torch

from fastopt import backends as _backends
from fastopt.functional.batchnorm import batch_norm_backward, batch_norm_forward
from fastopt.functional.dropout import dropout_backward, dropout_forward
from fastopt.torch import _cuda, _lean
from fastopt.torch._checks import (check as _check, check_channels as _check_channels,
                                   check_order as _check_order, stat_dtype as _stat_dtype)
from fastopt.torch._compile_cache import tag_compile_caches
from fastopt.torch._io import (arr as _arr, channels_last as _channels_last,
                               empty_as as _empty_as, empty_in_order as _empty_in_order,
                               from_order as _from_order, in_order as _in_order,
                               opt_arr as _opt_arr, output_order as _output_order, rows as _rows,
                               tensor as _tensor, threads as _threads, unrows as _unrows)

__all__ = ["batch_norm_eval_", "batch_norm_train_", "call", "direct"]

def _stat(t, x):
    """A per-channel tensor as the kernels take it: contiguous, ``_stat_dtype(x)``
    (a copy only for non-contiguous or 16-bit ones)."""
    return t.to(_stat_dtype(x), memory_format=torch.contiguous_format)


_CONST = {}


def _const(value, c, like):
    """Cached ``(C,)`` ones/zeros for an absent weight/bias (affine=False): fastopt's
    kernels take gamma and beta arrays. Never written, so one per (value, C, dtype, device)."""
    dtype = _stat_dtype(like)
    key = (value, c, dtype, like.device)
    t = _CONST.get(key)
    if t is None:
        t = _CONST[key] = torch.full((c,), value, dtype=dtype, device=like.device)
    return t


def _affine(x, weight, bias):
    c = x.shape[1]
    weight = _const(1.0, c, x) if weight is None else _stat(weight, x)
    bias = _const(0.0, c, x) if bias is None else _stat(bias, x)
    return weight, bias


# ---------------------------------------------------------------- the kernels
# Plain functions: the custom ops' CPU/CUDA kernels, and what the eager direct path runs.

def _bn_train(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
              running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
              count: torch.Tensor | None, momentum: float, eps: float
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training-mode batch norm (batch statistics); returns the new running statistics
    instead of updating ``running_mean``/``running_var``."""
    _bn_checks(x, weight, bias, running_mean, running_var)
    if running_mean is None:
        y, mean, invstd = _bn_train_kernel(x, weight, bias, None, None, count, momentum, eps)
        return y, mean, invstd, x.new_empty((0,)), x.new_empty((0,))
    # updated in the compute type, returned in the buffers' (16-bit buffers: rounded once)
    sd = _stat_dtype(x)
    new_rm = running_mean.detach().to(sd, memory_format=torch.contiguous_format, copy=True)
    new_rv = running_var.detach().to(sd, memory_format=torch.contiguous_format, copy=True)
    y, mean, invstd = _bn_train_kernel(x, weight, bias, new_rm, new_rv, count, momentum, eps)
    return y, mean, invstd, new_rm.to(running_mean.dtype), new_rv.to(running_var.dtype)


def _bn_train_inplace(x, weight, bias, running_mean, running_var, count, momentum, eps):
    """The eager form of :func:`_bn_train`: updates ``running_mean``/``running_var`` in
    place inside the kernel (as torch's own batch norm does) instead of returning
    copies, and returns ``(y, save_mean, save_invstd)``. Buffers that are not
    contiguous or not of the compute type (16-bit buffers of a 16-bit input) take the
    functional road."""
    _bn_checks(x, weight, bias, running_mean, running_var)
    sd = _stat_dtype(x)
    if running_mean is not None and not (running_mean.is_contiguous()
                                         and running_var.is_contiguous()
                                         and running_mean.dtype == sd == running_var.dtype):
        y, mean, invstd, new_rm, new_rv = _bn_train(x, weight, bias, running_mean, running_var,
                                                    count, momentum, eps)
        running_mean.copy_(new_rm)
        running_var.copy_(new_rv)
        return y, mean, invstd
    out = _bn_train_kernel(x, weight, bias, running_mean, running_var, count, momentum, eps)
    return out if running_mean is None else _bumped(out, running_mean, running_var)


def _bumped(out, running_mean, running_var):
    # written through NumPy views: torch's version counters must move
    torch.autograd.graph.increment_version(running_mean)
    torch.autograd.graph.increment_version(running_var)
    return out


def _momentum(count, momentum):
    return momentum if count is None else 1.0 / float(count)


def _bn_train_kernel(x, weight, bias, rm, rv, count, momentum, eps):
    """The training kernel on checked arguments; updates ``rm``/``rv`` (contiguous
    tensors or None) in place. Plain CPU float32/float64 calls: :mod:`._lean`."""
    momentum = _momentum(count, momentum)   # momentum=None: the cumulative average
    out = _lean.forward(x, weight, bias, rm, rv, True, momentum, eps)
    if out is not None:
        return out
    perm = _channels_last(x)
    xa = _rows(x, perm)
    weight, bias = _affine(x, weight, bias)
    with _cuda.stream_of([x]):
        y, mean, invstd = _threads(batch_norm_forward, xa, _arr(weight), _arr(bias),
                                   _opt_arr(rm), _opt_arr(rv), training=True,
                                   momentum=float(momentum), eps=float(eps))
        return _unrows(y, x, perm), _tensor(mean), _tensor(invstd)


def _bn_eval(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
             running_mean: torch.Tensor, running_var: torch.Tensor, eps: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm: normalizes with the running statistics."""
    out = _lean.forward(x, weight, bias, running_mean, running_var, False, 0.0, eps)
    if out is not None:
        return out
    _bn_checks(x, weight, bias, running_mean, running_var)
    perm = _channels_last(x)
    weight, bias = _affine(x, weight, bias)
    with _cuda.stream_of([x]):
        y, mean, invstd = _threads(batch_norm_forward, _rows(x, perm), _arr(weight),
                                   _arr(bias), _arr(_stat(running_mean, x)),
                                   _arr(_stat(running_var, x)), training=False, eps=float(eps))
        return _unrows(y, x, perm), _tensor(mean), _tensor(invstd)


def _bn_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None,
                 save_mean: torch.Tensor, save_invstd: torch.Tensor, training: bool,
                 output: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dx, dweight, dbias)`` from the forward's saved statistics; ``dx`` has ``x``'s
    layout (``dy`` is brought to it). ``output`` (the forward's ``y``) is not read: the
    traced backward takes it so that torch.compile's partitioner keeps ``y`` and
    recomputes what a ReLU after the layer needs from it (see :func:`_bn_setup`)."""
    out = _lean.backward(dy, x, weight, save_mean, save_invstd, training)
    if out is not None:
        return out
    _check("batch_norm_backward", x, grad_output=dy, weight=weight)
    perm = _channels_last(x)
    weight, _ = _affine(x, weight, None)
    with _cuda.stream_of([x]):
        dx, dw, db = _threads(batch_norm_backward, _rows(dy, perm), _rows(x, perm),
                              _arr(weight), _arr(save_mean), _arr(save_invstd),
                              training=training)
        return _unrows(dx, x, perm), _tensor(dw), _tensor(db)


def _dropout(x: torch.Tensor, p: float, seed: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverted dropout with fastopt's Philox mask of ``seed`` (a 0-d int64 tensor) over
    ``x``'s elements in memory order: ``(y, mask, order)``, ``y`` stored as ``x`` is
    (contiguous if ``x`` has gaps), ``mask`` bit-packed (``uint8``, ``ceil(numel / 8)``
    bytes), ``order`` (CPU int64) the permutation of dimensions ``mask`` follows."""
    _check("dropout", x)
    return _dropout_in_order(dropout_forward, x, p, seed, training=True)


def _dropout_in_order(kernel, x, p, seed, cached_order=False, **kwargs):
    order = _output_order(x)   # x with gaps: in_order copies it, y is contiguous
    with _cuda.stream_of([x]):
        y, mask = _threads(kernel, _in_order(x, order), float(p), seed=int(seed), **kwargs)
        return _from_order(y, order), _tensor(mask), _order_tensor(order, x.dim(), cached_order)


_ORDERS = {}


def _order_tensor(order, ndim, cached):
    """``order`` (``()``: contiguous) as the int64 permutation the ops return; the direct
    path shares one per order (never written), the ops return a new one."""
    full = order or tuple(range(ndim))
    t = _ORDERS.get(full) if cached else None
    if t is None:
        t = torch.tensor(full, dtype=torch.int64)
        if cached:
            _ORDERS[full] = t
    return t


def _dropout_backward(dy: torch.Tensor, mask: torch.Tensor, p: float, order: torch.Tensor
                      ) -> torch.Tensor:
    """``dx = dy / (1 - p)`` where the mask bit is set, else 0; ``mask`` follows the memory
    ``order`` of the forward's ``x``; ``dx`` is stored as ``dy`` is."""
    _check("dropout_backward", dy)
    return _dropout_backward_in_order(dropout_backward, dy, mask, p, order)


def _dropout_backward_in_order(kernel, dy, mask, p, order):
    _check_order(order)
    order = tuple(order.tolist())
    if sorted(order) != list(range(dy.dim())):
        raise ValueError(f"fastopt.dropout_backward: order {order} is not a permutation of "
                         f"the {dy.dim()} dimensions of grad_output")
    order = () if order == tuple(range(dy.dim())) else order
    with _cuda.stream_of([dy]):
        dx = _from_order(_threads(kernel, _in_order(dy, order), _arr(mask), float(p)), order)
    mine = _output_order(dy)
    return dx if mine == order else _empty_in_order(dy, mine).copy_(dx)


def _dropout_direct(x, p, seed):
    """:func:`_dropout` for the eager direct path, whose arguments are checked by
    construction (``p`` by :func:`fastopt.torch.dropout`, ``seed`` drawn in
    ``[0, 2**63)``, the dtype here): a CPU tensor goes straight to the cpp backend's
    kernel, skipping the Python validation of ``fastopt.dropout_forward`` (dropout
    has no native fast path, and that validation costs as much as a small layer)."""
    _check("dropout", x)
    kernel = _cpp_dropout_forward if _direct_cpp(x) else dropout_forward
    return _dropout_in_order(kernel, x, p, seed, cached_order=True, training=True)


def _dropout_backward_direct(dy, mask, p, order):
    """:func:`_dropout_backward` for the direct path: ``mask`` is the forward's own
    and autograd gave ``dy`` the output's shape and dtype."""
    kernel = _backends.module("dropout", "cpp").backward if _direct_cpp(dy) else dropout_backward
    return _dropout_backward_in_order(kernel, dy, mask, p, order)


def _direct_cpp(t):
    return t.device.type == "cpu" and _backends.choose("auto", False) == "cpp"


def _cpp_dropout_forward(x, p, seed, training):
    """The cpp backend's kernel with ``fastopt.dropout_forward``'s arguments."""
    return _backends.module("dropout", "cpp").forward(x, p, seed)


def _bn_checks(x, weight, bias, running_mean, running_var):
    _check("batch_norm", x, weight=weight, bias=bias, running_mean=running_mean,
           running_var=running_var)
    _check_channels("batch_norm", x, weight=weight, bias=bias, running_mean=running_mean,
                    running_var=running_var)


# ---------------------------------------------------------------- the custom ops

# flexible_layout: inductor passes batch norm's inputs in the layout it chose (channels-last
# after a convolution on the CPU) instead of converting them to the traced contiguous strides
# and back; the kernels read channels-last memory as (M, C) rows and return that layout.
# The backward op gets its own constraint (_lower_backward): dy stored as x is.
# Dropout too: its mask follows x's memory order, which the op returns (order) for the
# backward, since the traced graph cannot know the layout inductor picks.
_FLEXIBLE = (torch.Tag.flexible_layout,)
batch_norm_train = torch.library.custom_op("fastopt::batch_norm_train", _bn_train, mutates_args=(),
                                           tags=_FLEXIBLE)
batch_norm_eval = torch.library.custom_op("fastopt::batch_norm_eval", _bn_eval, mutates_args=(),
                                          tags=_FLEXIBLE)
batch_norm_backward_op = torch.library.custom_op("fastopt::batch_norm_backward", _bn_backward,
                                                 mutates_args=())
_LOWERED = []


def _lower_backward():
    """Gives inductor a lowering of ``batch_norm_backward`` that stores ``dy`` in
    ``x``'s stride order (once, when the op is first traced, before inductor lowers the
    graph). Without it inductor hands over ``x`` channels-last (a
    convolution's output) and ``dy`` contiguous (its default for a computed buffer),
    and the op must copy one of them. Uses inductor's internal lowering API (pinned
    torch); if that is missing, the op keeps inductor's default constraint."""
    if _LOWERED:
        return
    _LOWERED.append(True)
    try:
        from torch._inductor import ir, lowering
        from torch._inductor.virtualized import V
    except ImportError:   # pragma: no cover - torch without inductor
        return

    def same_layout(fx_node, dy, x, *rest, **kwargs):
        order = ir.get_stride_order(x.get_stride(), V.graph.sizevars.shape_env)
        x = ir.ExternKernel.require_stride_order(x, order)
        return (ir.ExternKernel.require_stride_order(dy, order), x, *rest), kwargs

    lowering.make_fallback(batch_norm_backward_op._opoverload, layout_constraint=same_layout,
                           warn=False)
dropout_op = torch.library.custom_op("fastopt::dropout", _dropout, mutates_args=(),
                                     tags=_FLEXIBLE)
dropout_backward_op = torch.library.custom_op("fastopt::dropout_backward", _dropout_backward,
                                              mutates_args=(), tags=_FLEXIBLE)


def _bn_outputs(x, n_stats):
    c = x.shape[1]
    return (_empty_as(x),) + tuple(x.new_empty((c,), dtype=_stat_dtype(x))
                                   for _ in range(n_stats))


@batch_norm_train.register_fake
def _(x, weight, bias, running_mean, running_var, count, momentum, eps):
    _bn_checks(x, weight, bias, running_mean, running_var)
    if running_mean is None:
        return _bn_outputs(x, 2) + (x.new_empty((0,)), x.new_empty((0,)))
    return _bn_outputs(x, 2) + (running_mean.new_empty(running_mean.shape),
                                running_var.new_empty(running_var.shape))


@batch_norm_eval.register_fake
def _(x, weight, bias, running_mean, running_var, eps):
    _bn_checks(x, weight, bias, running_mean, running_var)
    return _bn_outputs(x, 2)


@batch_norm_backward_op.register_fake
def _(dy, x, weight, save_mean, save_invstd, training, output=None):
    _lower_backward()   # traced (AOT autograd runs this before inductor lowers the graph)
    _check("batch_norm_backward", x, grad_output=dy, weight=weight)
    return _bn_outputs(x, 2)


@dropout_op.register_fake
def _(x, p, seed):
    _check("dropout", x)
    return (_empty_in_order(x, _output_order(x)),
            x.new_empty(((x.numel() + 7) // 8,), dtype=torch.uint8),
            torch.empty((x.dim(),), dtype=torch.int64, device="cpu"))


@dropout_backward_op.register_fake
def _(dy, mask, p, order):
    _check("dropout_backward", dy)
    _check_order(order)
    return _empty_in_order(dy, _output_order(dy))


# ---------------------------------------------------------------- autograd
# The same setup/backward functions serve the custom ops (register_autograd) and the
# direct path's autograd.Functions; the backward runs the backward op when traced.

def direct(*tensors):
    """True when a call may skip torch's dispatcher and run the kernels directly: eager
    mode on plain tensors (no torch.compile / export / jit tracing, no dispatch or
    functorch mode, no tensor subclass). The custom ops' Python dispatch costs tens of
    microseconds per call; everything else must see the ops."""
    return (DIRECT and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and torch._C._len_torch_dispatch_stack() == 0
            and not torch._C._are_functorch_transforms_active()
            and all(t is None or type(t) in _PLAIN for t in tensors))


DIRECT = True   # tests turn it off to run the eager calls through the ops
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _bn_setup(ctx, inputs, output, training):
    """Saves what the backward needs; while torch.compile traces (the ops' road: the
    direct road's Functions never run then), also puts ``y`` on the context for the
    backward op's ``output``. Without it, the min-cut partitioner saves a ReLU's mask
    after the layer as a bool tensor (1 byte an element instead of ``y``'s 4), and
    inductor (torch 2.13, AVX-512) stores bool masks with a per-lane branch: on
    (32, 32, 32, 32) that store made a compiled BN + ReLU + max-pool step 2-3x slower
    than with ``y`` kept (docs/torch-layers.md, benchmarks/RESULTS.md, session 15); with
    ``y`` an input of the backward graph, the partitioner recomputes the mask from it.
    A context attribute, not ``save_for_backward``: a saved ``y`` would trip autograd's
    version check under an in-place ReLU (which then passes its own output here, equally
    unread). Eager calls keep nothing more: there the attribute would only hold ``y``
    alive in a cycle through its own ``grad_fn``."""
    x, weight, bias = inputs[:3]
    y, mean, invstd = output[:3]
    ctx.save_for_backward(x, weight, mean, invstd)
    ctx.training, ctx.bias_dtype = training, None if bias is None else bias.dtype
    ctx.eps = inputs[-1]   # both ops' last argument; the second-order formula needs it
    ctx.mark_non_differentiable(*output[1:])
    if torch.compiler.is_compiling():
        ctx.output = y


def _bn_grads_differentiable(ctx, dy, x, weight, mean, invstd):
    """``(dx, dweight, dbias)`` in torch operations, which autograd differentiates again
    (``create_graph=True``: gradient penalties, MAML), as it does torch's batch norm. The
    analytic backward, in the compute type; in training mode the batch statistics are
    recomputed from ``x``, of which they are functions (the saved ones are constants)."""
    c = x.shape[1]
    dims = [0, *range(2, x.dim())]
    shape = [1, c] + [1] * (x.dim() - 2)
    ct = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    xf, g = x.to(ct), dy.to(ct)
    if ctx.training:
        mu = xf.mean(dims, keepdim=True)
        inv = ((xf - mu).square().mean(dims, keepdim=True) + ctx.eps).rsqrt()
    else:
        mu, inv = mean.to(ct).reshape(shape), invstd.to(ct).reshape(shape)
    xhat = (xf - mu) * inv
    scale = inv if weight is None else inv * weight.to(ct).reshape(shape)
    sum_g = g.sum(dims, keepdim=True)
    sum_gx = (g * xhat).sum(dims, keepdim=True)
    if ctx.training:
        m = x.numel() // c
        dx = scale * (g - sum_g / m - xhat * (sum_gx / m))
    else:
        dx = scale * g
    return dx.to(x.dtype), sum_gx.reshape(c), sum_g.reshape(c)


def _bn_grads(ctx, dy, n_inputs):
    x, weight, mean, invstd = ctx.saved_tensors
    args = (dy, x, weight, mean, invstd, ctx.training)
    if torch.is_grad_enabled() and (dy.requires_grad or x.requires_grad
                                    or weight is not None and weight.requires_grad):
        dx, dw, db = _bn_grads_differentiable(ctx, dy, x, weight, mean, invstd)
    elif direct(dy, x):
        dx, dw, db = _bn_backward(*args)
    else:
        dx, dw, db = batch_norm_backward_op(*args, getattr(ctx, "output", None))
    # the kernels' dweight/dbias are in the compute type: a 16-bit weight gets its own type
    return (dx, None if weight is None else dw.to(weight.dtype),
            None if ctx.bias_dtype is None else db.to(ctx.bias_dtype)) + (None,) * (n_inputs - 3)


def _bn_train_setup(ctx, inputs, output):
    _bn_setup(ctx, inputs, output, True)


def _bn_eval_setup(ctx, inputs, output):
    _bn_setup(ctx, inputs, output, False)


def _bn_train_grads(ctx, dy, *_):
    return _bn_grads(ctx, dy, 8)


def _bn_eval_grads(ctx, dy, *_):
    return _bn_grads(ctx, dy, 6)


def _dropout_setup(ctx, inputs, output):
    ctx.p = inputs[1]
    ctx.save_for_backward(*output[1:])   # the 1-bit mask and its order: all the backward needs
    ctx.mark_non_differentiable(*output[1:])


def _dropout_grads(ctx, dy, *_):
    mask, order = ctx.saved_tensors
    if not direct(dy):
        return dropout_backward_op(dy, mask, ctx.p, order), None, None
    if torch.is_grad_enabled() and dy.requires_grad:   # create_graph: a second order
        return _DROPOUT_BACKWARD.apply(dy, mask, ctx.p, order), None, None
    return _dropout_backward_direct(dy, mask, ctx.p, order), None, None


# Dropout's backward dx = dy * mask / (1 - p) is linear in dy: its own gradient is the
# same map, so a double backward (gradient penalties, MAML) works as torch's does.
def _dropout_backward_setup(ctx, inputs, output):
    ctx.p = inputs[2]
    ctx.save_for_backward(inputs[1], inputs[3])


def _dropout_backward_grads(ctx, ddx):
    return _dropout_grads(ctx, ddx) + (None,)


def _function(name, impl, setup, grads, first=False):
    """An autograd.Function running ``impl`` with the ops' setup and backward (the
    classic ``forward(ctx, ...)`` form: a ``setup_context`` Function binds its arguments
    with ``inspect`` on every call). ``first``: it returns ``impl``'s first output alone
    (a layer's ``y``; fewer outputs for autograd to wrap and to feed zeros to). Every
    ``grads`` is itself differentiable: dropout's is its own linear map, batch norm's
    runs :func:`_bn_grads_differentiable` under ``create_graph=True``."""
    def forward(ctx, *args):
        out = impl(*args)
        setup(ctx, args, out)
        return out[0] if first else out
    return type(name, (torch.autograd.Function,), {
        "forward": staticmethod(forward), "backward": staticmethod(grads)})


_CASES = {"batch_norm_train": (batch_norm_train, _bn_train, _bn_train_setup, _bn_train_grads),
          "batch_norm_eval": (batch_norm_eval, _bn_eval, _bn_eval_setup, _bn_eval_grads),
          "dropout": (dropout_op, _dropout, _dropout_setup, _dropout_grads)}
_FUNCTIONS = {}
_DIRECT_IMPLS = {"dropout": _dropout_direct}
for _name, (_op, _impl, _setup, _grads) in _CASES.items():
    torch.library.register_autograd(f"fastopt::{_name}", _grads, setup_context=_setup)
    _impl = _DIRECT_IMPLS.get(_name, _impl)
    _FUNCTIONS[_name] = (_op, _impl, _function(f"_{_name}", _impl, _setup, _grads))
torch.library.register_autograd("fastopt::dropout_backward", _dropout_backward_grads,
                                setup_context=_dropout_backward_setup)
_DROPOUT_BACKWARD = _function("_dropout_backward", _dropout_backward_direct,
                              _dropout_backward_setup, _dropout_backward_grads)


tag_compile_caches()


def call(name, *args):
    """Runs forward op ``name`` (``batch_norm_train``, ``batch_norm_eval``, ``dropout``):
    through ``torch.ops.fastopt`` when traced, else directly (an autograd.Function
    when a gradient is wanted, the bare kernel when not)."""
    op, impl, fn = _FUNCTIONS[name]
    return _run(op, impl, fn, args)


def _run(op, impl, fn, args):
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if not direct(*tensors):
        return op(*args)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return fn.apply(*args)
    return impl(*args)


_TRAIN_INPLACE = _function("_batch_norm_train_inplace", _bn_train_inplace, _bn_train_setup,
                           _bn_train_grads, first=True)
_EVAL_Y = _function("_batch_norm_eval_y", _bn_eval, _bn_eval_setup, _bn_eval_grads, first=True)


def batch_norm_eval_(x, weight, bias, running_mean, running_var, eps):
    """Eval-mode batch norm's ``y`` (:func:`call` of ``batch_norm_eval``, first output)."""
    out = _run(batch_norm_eval, _bn_eval, _EVAL_Y, (x, weight, bias, running_mean, running_var,
                                                    eps))
    return out if isinstance(out, torch.Tensor) else out[0]


def batch_norm_train_(x, weight, bias, running_mean, running_var, count, momentum, eps):
    """Training-mode batch norm that updates ``running_mean``/``running_var`` (when
    given) in place, as a module does; returns ``y``. Traced: the functional op,
    then a copy of its new statistics into the buffers (functionalization turns it
    into the graph's buffer update). Eager: the kernel updates the buffers itself,
    with no copy."""
    args = (x, weight, bias, running_mean, running_var, count, momentum, eps)
    out = _run(batch_norm_train, _bn_train_inplace, _TRAIN_INPLACE, args)
    if isinstance(out, torch.Tensor):   # the direct autograd.Function: y alone
        return out
    if len(out) == 5 and running_mean is not None:   # the functional op ran
        running_mean.copy_(out[3])
        running_var.copy_(out[4])
    return out[0]
