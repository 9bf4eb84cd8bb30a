"""``fastopt demo``: train a real network with fastopt's kernels and show the learning curves.

An MLP (64-256-256-10, He initialization, batch norm before each ReLU,
inverted dropout after it, softmax cross-entropy) learns scikit-learn's bundled
handwritten digits. The linear layers and the loss are NumPy; batch norm,
dropout and every parameter update are fastopt kernels on ``backend``. After a
gradient check of the whole network (``fastopt.gradcheck``), the same network
is trained from the same initialization with SGD, SGD + momentum, Nesterov,
RMSProp, Adam and AdamW under a warm-up + cosine learning-rate schedule; a
table of final training loss, validation and test accuracy and time is
printed and the learning curves are saved to ``<out>/learning_curves.png``.

Run it as ``fastopt demo`` / ``python -m fastopt demo`` (options: ``--help``) or
from Python::

    from fastopt.demo import run
    result = run(epochs=20, optimizers=["adam", "sgd"], out="demo-out", seed=0)

Needs the ``demo`` extra: ``pip install 'fastopt[demo]'`` (scikit-learn,
matplotlib, tqdm). The same seed gives the same numbers (times aside).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field

from fastopt.demo.train import DEFAULT_OPTIMIZERS, OPTIMIZERS, Config, History

__all__ = ["run", "DemoResult", "OPTIMIZERS", "Config"]


@dataclass
class DemoResult:
    config: Config
    backend: str
    data: str
    gradcheck: object              # fastopt.gradcheck.GradcheckResult, or None if skipped
    histories: list = field(default_factory=list)
    table: str = ""
    png: str = ""
    json: str = ""
    seconds: float = 0.0

    def numbers(self):
        """Everything a run computes except timings: equal for equal seeds."""
        keep = ("name", "iters", "train_loss", "lrs", "eval_iters", "val_acc",
                "final_train_loss", "val_accuracy", "test_accuracy")
        return [{k: getattr(h, k) for k in keep} for h in self.histories]


def _missing_dependency(exc):
    return RuntimeError(f"fastopt demo needs scikit-learn, matplotlib and tqdm ({exc}); "
                        "install them with: pip install 'fastopt[demo]'")


def resolve_backend(backend: str) -> str:
    """``auto`` -> the backend fastopt picks for NumPy arrays; checks the others exist."""
    from fastopt import backends as _backends
    if backend == "cuda":
        raise ValueError("the demo keeps its arrays in host memory (NumPy); choose a CPU backend: "
                         "auto, cpp, numba or numpy")
    name = _backends.choose(backend, False)
    why = _backends.unavailable_reason(name)
    if why is not None:
        raise RuntimeError(f"fastopt backend {name!r} is unavailable here: {why}")
    return name


def run(epochs=20, optimizers=None, out="demo-out", seed=0, backend="auto", *, batch_size=64,
        p_drop=0.2, hidden=(256, 256), progress=True, gradcheck=True, echo=print) -> DemoResult:
    """Runs the whole demo; prints as it goes (``echo``) and returns a :class:`DemoResult`.

    ``optimizers`` is a list of names from :data:`OPTIMIZERS` (all by default);
    ``out`` the folder for ``learning_curves.png`` and ``results.json``;
    ``seed`` drives the split, the initialization, the mini-batch order and the
    dropout masks; ``backend`` is fastopt's (``auto``, ``cpp``, ``numba``,
    ``numpy``). ``progress``: tqdm bars (stderr); ``gradcheck``: check the
    network's gradients first.
    """
    with _blas_one_thread():
        return _run(epochs, optimizers, out, seed, backend, batch_size, p_drop, hidden, progress,
                    gradcheck, echo)


def _run(epochs, optimizers, out, seed, backend, batch_size, p_drop, hidden, progress, gradcheck,
         echo) -> DemoResult:
    t_start = time.perf_counter()
    optimizers = list(DEFAULT_OPTIMIZERS) if optimizers is None else [o.lower() for o in optimizers]
    unknown = [o for o in optimizers if o not in OPTIMIZERS]
    if unknown or not optimizers:
        raise ValueError(f"unknown optimizer(s) {unknown or optimizers}; choose from {', '.join(OPTIMIZERS)}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an int >= 2 (batch norm needs two samples), got {batch_size!r}")
    name = resolve_backend(backend)
    cfg = Config(epochs=epochs, batch_size=batch_size, hidden=tuple(hidden), p_drop=p_drop,
                 seed=seed, backend=name, optimizers=tuple(optimizers), progress=progress)
    try:
        from fastopt.demo.data import load_digits_splits
        import sklearn  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise _missing_dependency(exc) from exc
    from fastopt.demo.model import MLP
    from fastopt.demo.report import format_table, plot_curves
    from fastopt.demo.train import batches, train_one, warmup_steps

    os.makedirs(out, exist_ok=True)
    data = load_digits_splits(seed)
    sizes = (data.n_features, *cfg.hidden, data.n_classes)
    model = MLP(sizes, p_drop, seed=seed, backend=name)
    init = model.state()
    steps_per_epoch = len(batches(data.X_train.shape[0], batch_size, seed, 0))
    arch = "-".join(map(str, sizes))
    echo(f"fastopt demo: MLP {arch} ({model.n_params:,} parameters; Linear -> BatchNorm -> ReLU -> "
         f"Dropout(p={p_drop:g}) per hidden layer, He init, softmax cross-entropy)")
    echo(f"data: scikit-learn digits, {data.sizes()}; mean/std from the training split only")
    echo(f"backend: {name} (batch norm, dropout and optimizer steps; linear layers and loss in NumPy), "
         f"float32, seed {seed}")
    total = epochs * steps_per_epoch
    echo(f"training: {epochs} epoch(s) x {steps_per_epoch} steps (batch ~{data.X_train.shape[0] // steps_per_epoch}); "
         f"learning rate: linear warm-up over {warmup_steps(total, cfg.warmup_fraction)} step(s) "
         f"from lr/3, then cosine to 0 at step {total}")
    echo("optimizers: " + ", ".join(OPTIMIZERS[o].describe() for o in optimizers))

    check = None
    if gradcheck:
        from fastopt.demo.check import check_network
        check = check_network(model, data.X_train, data.y_train, seed=seed)
        echo("gradient check of the whole network (float64, batch of 16, fixed dropout seed, "
             f"{check.checked} sampled elements):")
        echo("  " + str(check).replace("\n", "\n  "))

    histories = []
    for o in optimizers:
        bar = _bar(progress, epochs * steps_per_epoch, OPTIMIZERS[o].label)
        try:
            histories.append(train_one(o, model, init, data, cfg, bar))
        finally:
            if bar is not None:
                bar.close()
    model.load_state(init)

    table = format_table(histories)
    echo("")
    echo(table)
    png = plot_curves(histories, os.path.join(out, "learning_curves.png"),
                      title=f"fastopt demo: MLP {arch} on digits, backend {name}, seed {seed}",
                      steps_per_epoch=steps_per_epoch)
    result = DemoResult(cfg, name, data.sizes(), check, histories, table, png,
                        os.path.join(out, "results.json"))
    result.seconds = time.perf_counter() - t_start
    with open(result.json, "w") as f:
        json.dump({"config": asdict(cfg), "backend": name, "data": data.sizes(),
                   "gradcheck": None if check is None else {
                       "passed": check.passed, "max_rel_error": check.max_rel_error,
                       "checked": check.checked},
                   "optimizers": [asdict(h) for h in histories],
                   "seconds": result.seconds}, f, indent=1)
    echo(f"\nlearning curves: {png}")
    echo(f"numbers: {result.json}   (total {result.seconds:.1f} s)")
    return result


def _blas_one_thread():
    """The matrices here are tiny (~67 x 256): BLAS threads only add hand-offs
    (and spin on a busy machine), so NumPy's BLAS runs on one thread during the
    demo (threadpoolctl ships with scikit-learn)."""
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(limits=1, user_api="blas")
    except Exception:   # threadpoolctl missing or unable: run as is
        return contextlib.nullcontext()


def _bar(progress, total, label):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=f"{label:>12}", unit="step", leave=True, dynamic_ncols=True)
