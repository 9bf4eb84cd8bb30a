"""A torch training step, torch.nn layers + torch.optim.Adam(fused=True) against
fastopt.torch.convert(model) + fastopt.torch.Adam, eager and torch.compile'd.

Reports, per variant, the median time of one whole step (forward + backward +
optimizer step + zero_grad; also converted layers with torch's Adam, which
separates the layers' share from the optimizer's) and of each layer family alone: every batch norm
(resp. dropout) layer of the model, forward + backward on inputs of the shapes
it sees in the model, summed over the family. All variants of one table are
timed round-robin in one process (A B C D A B C D ...), medians of ``--samples``
rounds (docs/notes-bench.md: interleaved medians), with the minor page faults per call
(fresh outputs that the allocator maps and unmaps each call). float32, fresh random data.

    PYTHONPATH=. python benchmarks/bench_torch_layers.py --model cnn
    PYTHONPATH=. python benchmarks/bench_torch_layers.py --model mlp --no-compile
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import resource
import statistics
import time

import torch

import fastopt
import fastopt.torch as ft


def cnn():
    """A small CIFAR-sized CNN: three conv blocks with batch norm, dropout after pooling."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(64 * 8 * 8, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 10))


def mlp():
    """A wide MLP: Linear -> BatchNorm1d -> ReLU -> Dropout, three hidden layers."""
    nn = torch.nn
    layers, width = [], 1024
    for _ in range(3):
        layers += [nn.Linear(width, 2048, bias=False), nn.BatchNorm1d(2048), nn.ReLU(),
                   nn.Dropout(0.2)]
        width = 2048
    return nn.Sequential(*layers, nn.Linear(width, 10))


MODELS = {"cnn": (cnn, (32, 3, 32, 32)), "mlp": (mlp, (256, 1024))}
FAMILIES = {"batch norm": torch.nn.modules.batchnorm._BatchNorm, "dropout": torch.nn.Dropout}


def layer_inputs(model, x):
    """The input shape of every batch norm / dropout layer (one forward with hooks)."""
    shapes = {}

    def record(m, args, out):   # returns None: the output stays
        shapes[id(m)] = args[0].shape

    hooks = [m.register_forward_hook(record)
             for m in model.modules() if isinstance(m, tuple(FAMILIES.values()))]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return shapes


class Family(torch.nn.Module):
    """The layers of one family side by side: forward runs each on its own input."""

    def __init__(self, layers):
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, xs):
        return [m(x) for m, x in zip(self.layers, xs)]


def family_step(fam, xs, gs):
    torch.autograd.backward(fam(xs), gs)   # one backward: a compiled family is one graph


def train_step(model, opt, x, target):
    loss = torch.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def build(kind, compiled):
    make, shape = MODELS[kind]
    torch.manual_seed(0)
    ref = make()
    mine = ft.convert(copy.deepcopy(ref))
    x = torch.randn(shape)
    target = torch.randint(0, 10, (shape[0],))
    variants = {}
    both = ft.convert(copy.deepcopy(ref))
    for name, model, optcls, kw in (("torch", ref, torch.optim.Adam, {"fused": True}),
                                    ("fastopt", mine, ft.Adam, {}),
                                    ("layers only", both, torch.optim.Adam, {"fused": True})):
        opt = optcls(model.parameters(), lr=1e-3, **kw)
        run = torch.compile(model) if compiled else model
        variants[name] = (run, opt)
    return variants, x, target


def families(kind, compiled):
    """Per family: {variant: (callable, inputs, grads)} on the model's layer shapes."""
    make, shape = MODELS[kind]
    torch.manual_seed(0)
    ref = make()
    shapes = layer_inputs(ref, torch.randn(shape))
    out = {}
    for fam, cls in FAMILIES.items():
        layers = [m for m in ref.modules() if isinstance(m, cls)]
        xs = [torch.randn(shapes[id(m)], requires_grad=True) for m in layers]
        gs = [torch.randn(shapes[id(m)]) for m in layers]
        mods = {"torch": Family(layers), "fastopt": Family([ft.convert(copy.deepcopy(m))
                                                            for m in layers])}
        out[fam] = {k: (torch.compile(m) if compiled else m, xs, gs) for k, m in mods.items()}
    return out


def interleaved(fns, samples, min_seconds=0.02):
    """Median seconds per call of each function, timed round-robin, on two clocks:
    wall time and this process's CPU time (``time.process_time``: on a machine
    shared by many processes it leaves out the time spent descheduled, which
    otherwise dominates the wall medians; with one thread each it is the work)."""
    reps = {}
    for k, f in fns.items():   # warm-up (and compilation), then calls per sample
        f()
        t = time.perf_counter()
        f()
        reps[k] = max(1, int(min_seconds / max(time.perf_counter() - t, 1e-6)))
    times = {clock: {k: [] for k in fns} for clock in CLOCKS}
    for _ in range(samples):
        for k, f in fns.items():
            t, c, pf = time.perf_counter(), time.process_time(), _faults()
            for _ in range(reps[k]):
                f()
            times["wall"][k].append((time.perf_counter() - t) / reps[k])
            times["cpu"][k].append((time.process_time() - c) / reps[k])
            times["faults"][k].append((_faults() - pf) / reps[k])
    return {clock: {k: statistics.median(v) for k, v in ts.items()} for clock, ts in times.items()}


# faults: minor page faults per call (this process), e.g. fresh 2 MiB outputs that glibc
# mmaps and unmaps on every call, each page faulted in and zeroed by the kernel
CLOCKS = ("wall", "cpu", "faults")


def _faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def report(kind, compiled, samples):
    mode = "compiled" if compiled else "eager"
    variants, x, target = build(kind, compiled)
    fams = families(kind, compiled)
    fns = {f"step/{k}": (lambda m=m, o=o: train_step(m, o, x, target))
           for k, (m, o) in variants.items()}
    for fam, vs in fams.items():
        for k, (m, xs, gs) in vs.items():
            fns[f"{fam}/{k}"] = lambda m=m, xs=xs, gs=gs: family_step(m, xs, gs)
    t0 = time.perf_counter()
    meds = interleaved(fns, samples)
    print(f"\n{kind}, {mode} (batch {MODELS[kind][1]}; {samples} rounds, "
          f"{time.perf_counter() - t0:.0f} s incl. warm-up; load average {os.getloadavg()[0]:.1f})")
    print(f"| {'part':<28} | {'torch.nn':>10} | {'fastopt':>10} | {'speed-up':>8} "
          f"| {'torch CPU':>10} | {'fastopt CPU':>11} | {'CPU speed-up':>12} | {'faults':>11} |")
    print(f"|{'-' * 30}|{'-' * 11}:|{'-' * 11}:|{'-' * 9}:|{'-' * 11}:|{'-' * 12}:|{'-' * 13}:"
          f"|{'-' * 12}:|")
    rows = [("whole step (fwd+bwd+Adam)", "step/torch", "step/fastopt"),
            ("  fastopt layers, torch Adam", "step/torch", "step/layers only")]
    rows += [(f"{fam} layers (fwd+bwd)", f"{fam}/torch", f"{fam}/fastopt") for fam in FAMILIES]
    w, c, pf = meds["wall"], meds["cpu"], meds["faults"]
    for label, a, b in rows:
        print(f"| {label:<28} | {w[a] * 1e3:8.3f}ms | {w[b] * 1e3:8.3f}ms | {w[a] / w[b]:7.2f}x "
              f"| {c[a] * 1e3:8.3f}ms | {c[b] * 1e3:9.3f}ms | {c[a] / max(c[b], 1e-9):11.2f}x "
              f"| {pf[a]:5.0f}/{pf[b]:<5.0f} |")
    print("(faults: minor page faults per call, torch.nn / fastopt)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=list(MODELS) + ["both"], default="both")
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads of torch and of fastopt's cpp kernels (default: each one's own)")
    ap.add_argument("--no-compile", action="store_true", help="eager only")
    args = ap.parse_args()
    # every run compiles afresh: the figures must not depend on what an earlier run (of
    # this tree or another, e.g. a before/after pair) left in inductor's cache
    torch._inductor.config.force_disable_caches = True
    if args.threads:
        torch.set_num_threads(args.threads)
        from fastopt import _core
        _core.set_num_threads(args.threads)
    cpp = fastopt.info().get("cpp", {})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fastopt cpp "
          f"{cpp.get('isa', '?')}, {cpp.get('threads', '?')} threads; {platform.node()}; "
          f"load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    kinds = list(MODELS) if args.model == "both" else [args.model]
    for kind in kinds:
        for compiled in ([False] if args.no_compile else [False, True]):
            report(kind, compiled, args.samples)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
