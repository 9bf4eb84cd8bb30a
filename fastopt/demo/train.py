"""Training: one network, one initialization, one optimizer after another.

Every optimizer starts from the same initial parameters, sees the same
mini-batches in the same order and the same dropout masks (all drawn from
``seed``), and follows a linear warm-up + cosine learning-rate schedule
(``fastopt.schedules.warmup_cosine``). Every parameter update is one fastopt
optimizer ``step`` (one multi-tensor call per parameter group).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

import fastopt
from fastopt.demo.model import MLP, softmax_cross_entropy


@dataclass(frozen=True)
class OptimizerSpec:
    label: str          # shown in the table and the plot
    cls: str            # fastopt class name
    lr: float           # peak learning rate of the schedule
    kwargs: dict = field(default_factory=dict)
    weight_decay: float = 0.0   # applied to the weight matrices only
    note: str = ""

    def describe(self) -> str:
        return f"{self.label} (lr {self.lr:g}" + (f", {self.note})" if self.note else ")")


# Peak learning rates: the best mean *validation* accuracy (20 epochs, seeds
# 0-5) on a coarse grid of about 2x steps per optimizer (docs/design-demo.md);
# the test split played no part. Batch norm makes the network tolerate rates
# above the textbook defaults. Momentum 0.9 and Adam's betas are the usual ones.
OPTIMIZERS = {
    "sgd": OptimizerSpec("SGD", "SGD", 0.2),
    "momentum": OptimizerSpec("SGD+momentum", "SGD", 0.1, {"momentum": 0.9}, note="momentum 0.9"),
    "nesterov": OptimizerSpec("Nesterov", "SGD", 0.1, {"momentum": 0.9, "nesterov": True},
                              note="Nesterov momentum 0.9"),
    "rmsprop": OptimizerSpec("RMSProp", "RMSprop", 3e-3, {"alpha": 0.99}, note="alpha 0.99"),
    "adam": OptimizerSpec("Adam", "Adam", 1e-2, {"betas": (0.9, 0.999)}, note="betas (0.9, 0.999)"),
    "adamw": OptimizerSpec("AdamW", "AdamW", 1e-2, {"betas": (0.9, 0.999)}, weight_decay=0.05,
                           note="decoupled weight decay 0.05 on the weight matrices"),
    # Not in the default run: Adam with 8-bit block-wise state (state_bits=8) beside
    # "adam" shows the accuracy it keeps (docs/quantized-state.md).
    "adam8bit": OptimizerSpec("Adam 8-bit", "Adam", 1e-2,
                              {"betas": (0.9, 0.999), "state_bits": 8},
                              note="betas (0.9, 0.999), 8-bit state"),
}
DEFAULT_OPTIMIZERS = tuple(o for o in OPTIMIZERS if o != "adam8bit")


@dataclass
class Config:
    epochs: int = 20
    batch_size: int = 64
    hidden: tuple = (256, 256)
    p_drop: float = 0.2
    seed: int = 0
    backend: str = "auto"
    optimizers: tuple = DEFAULT_OPTIMIZERS
    evals_per_epoch: int = 4
    warmup_fraction: float = 0.05
    progress: bool = True


@dataclass
class History:
    name: str
    label: str
    lr: float
    iters: list = field(default_factory=list)        # 1-based update counts
    train_loss: list = field(default_factory=list)   # mini-batch loss of each update
    lrs: list = field(default_factory=list)
    eval_iters: list = field(default_factory=list)   # where validation was measured (0 = init)
    val_acc: list = field(default_factory=list)
    final_train_loss: float = float("nan")   # mean mini-batch loss over the last epoch
    val_accuracy: float = float("nan")
    test_accuracy: float = float("nan")
    seconds: float = float("nan")            # training (steps + periodic validation)
    step_seconds: float = float("nan")       # forward + backward + update only


def batches(n: int, batch_size: int, seed: int, epoch: int):
    """The mini-batches of one epoch: a permutation drawn from ``(seed, epoch)``
    cut into ``n // batch_size`` nearly equal parts (never a batch of 1, which
    batch norm cannot normalize)."""
    perm = np.random.default_rng([seed % 2**64, 2, epoch]).permutation(n)
    return np.array_split(perm, max(1, n // batch_size))


def warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    return max(1, int(round(warmup_fraction * total_steps)))


def schedule_for(spec: OptimizerSpec, total_steps: int, warmup_fraction: float):
    """Linear warm-up over ``warmup_fraction`` of the run (at least one step),
    from ``lr / 3`` (torch ``LinearLR``'s default start), then cosine
    annealing to 0 at the last step."""
    warmup = warmup_steps(total_steps, warmup_fraction)
    if total_steps <= warmup:
        return lambda t: spec.lr
    return fastopt.schedules.warmup_cosine(spec.lr, warmup, total_steps)


def make_optimizer(spec: OptimizerSpec, model: MLP, lr, backend):
    cls = getattr(fastopt, spec.cls)
    if spec.weight_decay:
        groups = [{"params": model.weights(), "weight_decay": spec.weight_decay},
                  {"params": model.others(), "weight_decay": 0.0}]
        opt = cls(groups, lr=lr, backend=backend, **spec.kwargs)
        order = [id(p) for p in model.weights() + model.others()]
    else:
        opt = cls(list(model.params), lr=lr, backend=backend, **spec.kwargs)
        order = [id(p) for p in model.params]
    index = {id(p): i for i, p in enumerate(model.params)}
    perm = [index[i] for i in order]
    return opt, perm


def train_one(name: str, model: MLP, init_state, data, cfg: Config, bar=None) -> History:
    """Trains ``model`` from ``init_state`` with optimizer ``name``; returns its history."""
    spec = OPTIMIZERS[name]
    model.load_state(init_state)
    n = data.X_train.shape[0]
    per_epoch = len(batches(n, cfg.batch_size, cfg.seed, 0))
    total = cfg.epochs * per_epoch
    lr = schedule_for(spec, total, cfg.warmup_fraction)
    opt, perm = make_optimizer(spec, model, lr, cfg.backend)
    h = History(name, spec.label, spec.lr)
    eval_every = max(1, per_epoch // max(1, cfg.evals_per_epoch))
    h.eval_iters.append(0)
    h.val_acc.append(model.accuracy(data.X_val, data.y_val))
    step = 0
    step_time = 0.0
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        epoch_losses = []
        for idx in batches(n, cfg.batch_size, cfg.seed, epoch):
            s0 = time.perf_counter()
            X, y = data.X_train[idx], data.y_train[idx]
            loss, grads = model.loss_and_grads(X, y, step=step)
            opt.step([grads[i] for i in perm])
            step_time += time.perf_counter() - s0
            if not np.isfinite(loss):
                raise FloatingPointError(f"{spec.label}: the training loss became {loss} at step {step + 1}")
            step += 1
            epoch_losses.append(loss)
            h.iters.append(step)
            h.train_loss.append(loss)
            h.lrs.append(lr(step - 1))
            if step % eval_every == 0 or step == total:
                h.eval_iters.append(step)
                h.val_acc.append(model.accuracy(data.X_val, data.y_val))
            if bar is not None:
                bar.set_postfix_str(f"epoch {epoch + 1}/{cfg.epochs}, loss {loss:.3f}",
                                    refresh=False)
                bar.update(1)
        h.final_train_loss = float(np.mean(epoch_losses))
    h.seconds = time.perf_counter() - t0
    h.step_seconds = step_time
    h.val_accuracy = model.accuracy(data.X_val, data.y_val)
    h.test_accuracy = model.accuracy(data.X_test, data.y_test)
    return h
