"""``fastopt demo --framework torch``: the demo's MLP as a torch model, on fastopt's torch layers.

The network, data, initialization, mini-batches and learning-rate schedule are
the NumPy demo's (:mod:`fastopt.demo`): ``[Linear (no bias) -> BatchNorm1d ->
ReLU -> Dropout] x 2 -> Linear``, He init from the same seed, scikit-learn's
digits. Written once in plain ``torch.nn``, then::

    model = fastopt.torch.convert(model)     # BatchNorm1d / Dropout -> fastopt's
    opt = fastopt.torch.Adam(model.parameters(), lr=1e-2)

and trained with every chosen optimizer (``fastopt.torch.SGD`` ... ``AdamW``);
with ``compare_torch`` (the default) the unconverted model with ``torch.optim``
(``fused=True`` where torch has it) trains beside it from the same start. Prints
the demo's table. The dropout masks come from torch's generator (seeded from
``seed``), so fastopt's rows and torch's rows see different masks.

    from fastopt.demo.torch_mlp import run_torch
    table = run_torch(epochs=5, optimizers=["adam"]).table
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fastopt.demo.train import DEFAULT_OPTIMIZERS, OPTIMIZERS, Config, History, batches, schedule_for, warmup_steps

_FUSED = {"SGD", "Adam", "AdamW"}   # torch.optim classes with a fused CPU step


@dataclass
class TorchDemoResult:
    histories: list = field(default_factory=list)
    table: str = ""


def build_model(sizes, p_drop, seed):
    """The plain torch.nn MLP with the NumPy demo's initialization (same seed, same values)."""
    import torch
    from fastopt.demo.model import MLP
    init = MLP(sizes, p_drop, seed=seed)
    layers, k = [], 0
    for l in range(len(sizes) - 2):
        lin = torch.nn.Linear(sizes[l], sizes[l + 1], bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(init.params[3 * l].T.copy()))
        layers += [lin, torch.nn.BatchNorm1d(sizes[l + 1]), torch.nn.ReLU(), torch.nn.Dropout(p_drop)]
        k = 3 * (l + 1)
    out = torch.nn.Linear(sizes[-2], sizes[-1])
    with torch.no_grad():
        out.weight.copy_(torch.from_numpy(init.params[k].T.copy()))
        out.bias.copy_(torch.from_numpy(init.params[k + 1]))
    return torch.nn.Sequential(*layers, out)


def _optimizer(spec, model, module):
    decay = [m.weight for m in model if type(m).__name__ == "Linear"]
    ids = {id(p) for p in decay}
    others = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": decay, "weight_decay": spec.weight_decay},
              {"params": others, "weight_decay": 0.0}]
    kwargs = dict(spec.kwargs)
    if module.__name__ == "torch.optim" and spec.cls in _FUSED:
        kwargs["fused"] = True
    return getattr(module, spec.cls)(groups, lr=spec.lr, **kwargs)


def _accuracy(model, X, y):
    import torch
    model.eval()
    with torch.no_grad():
        acc = float((model(X).argmax(1) == y).double().mean())
    model.train()
    return acc


def train_torch(name, model, data, cfg: Config, module, label) -> History:
    """Trains ``model`` (already initialized) with optimizer ``name`` from ``module``
    (``fastopt.torch`` or ``torch.optim``)."""
    import torch
    spec = OPTIMIZERS[name]
    n = data.X_train.shape[0]
    per_epoch = len(batches(n, cfg.batch_size, cfg.seed, 0))
    total = cfg.epochs * per_epoch
    lr = schedule_for(spec, total, cfg.warmup_fraction)
    opt = _optimizer(spec, model, module)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr(t) / spec.lr)
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    Xv, yv = torch.from_numpy(data.X_val), torch.from_numpy(data.y_val)
    h = History(name, label, spec.lr)
    eval_every = max(1, per_epoch // max(1, cfg.evals_per_epoch))
    h.eval_iters.append(0)
    h.val_acc.append(_accuracy(model, Xv, yv))
    torch.manual_seed(cfg.seed)   # the dropout masks
    step, step_time, t0 = 0, 0.0, time.perf_counter()
    for epoch in range(cfg.epochs):
        losses = []
        for idx in batches(n, cfg.batch_size, cfg.seed, epoch):
            s0 = time.perf_counter()
            i = torch.from_numpy(idx)
            loss = torch.nn.functional.cross_entropy(model(X[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step_time += time.perf_counter() - s0
            step += 1
            value = float(loss.detach())
            if not np.isfinite(value):
                raise FloatingPointError(f"{label}: the training loss became {value} at step {step}")
            losses.append(value)
            h.iters.append(step)
            h.train_loss.append(value)
            h.lrs.append(lr(step - 1))
            if step % eval_every == 0 or step == total:
                h.eval_iters.append(step)
                h.val_acc.append(_accuracy(model, Xv, yv))
        h.final_train_loss = float(np.mean(losses))
    h.seconds = time.perf_counter() - t0
    h.step_seconds = step_time
    h.val_accuracy = _accuracy(model, Xv, yv)
    h.test_accuracy = _accuracy(model, torch.from_numpy(data.X_test), torch.from_numpy(data.y_test))
    return h


def run_torch(epochs=20, optimizers=None, seed=0, *, batch_size=64, p_drop=0.2, hidden=(256, 256),
              compare_torch=True, echo=print) -> TorchDemoResult:
    """Trains the torch MLP with ``convert`` + ``fastopt.torch.<optimizer>`` (and, with
    ``compare_torch``, plain ``torch.nn`` + ``torch.optim``); prints and returns the table."""
    import torch
    import fastopt.torch
    from fastopt.demo.data import load_digits_splits
    from fastopt.demo.report import format_table
    optimizers = list(DEFAULT_OPTIMIZERS) if optimizers is None else [o.lower() for o in optimizers]
    unknown = [o for o in optimizers if o not in OPTIMIZERS]
    if unknown or not optimizers:
        raise ValueError(f"unknown optimizer(s) {unknown or optimizers}; choose from {', '.join(OPTIMIZERS)}")
    cfg = Config(epochs=epochs, batch_size=batch_size, hidden=tuple(hidden), p_drop=p_drop,
                 seed=seed, optimizers=tuple(optimizers), progress=False)
    data = load_digits_splits(seed)
    sizes = (data.n_features, *cfg.hidden, data.n_classes)
    steps = epochs * len(batches(data.X_train.shape[0], batch_size, seed, 0))
    echo(f"fastopt demo --framework torch: torch.nn MLP {'-'.join(map(str, sizes))} "
         f"(Linear -> BatchNorm1d -> ReLU -> Dropout(p={p_drop:g}) per hidden layer, He init), "
         f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, seed {seed}")
    echo(f"rows: fastopt.torch.convert(model) + fastopt.torch.<optimizer>"
         + ("; '(torch)' rows: the same model in torch.nn + torch.optim (fused=True for SGD, "
            "Adam, AdamW)" if compare_torch else ""))
    echo(f"training: {epochs} epoch(s), {steps} steps, warm-up over "
         f"{warmup_steps(steps, cfg.warmup_fraction)} step(s) then cosine, as the NumPy demo")
    result = TorchDemoResult()
    for o in optimizers:
        spec = OPTIMIZERS[o]
        runs = [(fastopt.torch.convert(build_model(sizes, p_drop, seed)), fastopt.torch,
                 spec.label)]
        if compare_torch:
            runs.append((build_model(sizes, p_drop, seed), torch.optim, f"{spec.label} (torch)"))
        for model, module, label in runs:
            result.histories.append(train_torch(o, model, data, cfg, module, label))
    result.table = format_table(result.histories)
    echo("")
    echo(result.table)
    return result
