"""The ``demo`` subcommand's arguments (kept here so ``fastopt/__main__.py`` only wires it in)."""
from __future__ import annotations

import argparse
import sys

HELP = "train an MLP on scikit-learn's digits with fastopt's kernels; prints a table, saves learning curves"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from fastopt.demo.train import DEFAULT_OPTIMIZERS, OPTIMIZERS
    parser.description = HELP
    parser.add_argument("--epochs", type=int, default=20, help="epochs per optimizer (default 20)")
    parser.add_argument("--optimizers", default=",".join(DEFAULT_OPTIMIZERS),
                        help=f"comma-separated subset of {','.join(OPTIMIZERS)} (default: all "
                             f"but adam8bit, Adam with 8-bit state)")
    parser.add_argument("--out", default="demo-out", help="output folder for the PNG and the JSON (default demo-out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, init, batches, dropout (default 0)")
    parser.add_argument("--backend", default="auto", choices=["auto", "cpp", "numba", "numpy"],
                        help="fastopt backend for batch norm, dropout and the updates (default auto)")
    parser.add_argument("--batch-size", type=int, default=64, help="mini-batch size (default 64)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-gradcheck", action="store_true", help="skip the gradient check")
    parser.add_argument("--framework", default="numpy", choices=["numpy", "torch"],
                        help="numpy: the NumPy network on fastopt's kernels (default); torch: the "
                             "same MLP in torch.nn, converted with fastopt.torch.convert and trained "
                             "with fastopt.torch optimizers, beside plain torch (table only)")
    return parser


def main(args) -> int:
    from fastopt.demo import run
    optimizers = [o.strip() for o in args.optimizers.replace(" ", ",").split(",") if o.strip()]
    if getattr(args, "framework", "numpy") == "torch":
        return _main_torch(args, optimizers)
    try:
        result = run(epochs=args.epochs, optimizers=optimizers, out=args.out, seed=args.seed,
                     backend=args.backend, batch_size=args.batch_size,
                     progress=not args.no_progress, gradcheck=not args.no_gradcheck)
    except (ValueError, RuntimeError) as exc:
        print(f"fastopt demo: error: {exc}", file=sys.stderr)
        return 2
    return 0 if result.gradcheck is None or result.gradcheck.passed else 1


def _main_torch(args, optimizers) -> int:
    try:
        from fastopt.demo.torch_mlp import run_torch
        run_torch(epochs=args.epochs, optimizers=optimizers, seed=args.seed,
                  batch_size=args.batch_size)
    except ImportError as exc:
        print(f"fastopt demo --framework torch needs torch and scikit-learn: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"fastopt demo: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":   # python -m fastopt.demo.cli
    sys.exit(main(add_arguments(argparse.ArgumentParser(prog="fastopt demo")).parse_args()))
