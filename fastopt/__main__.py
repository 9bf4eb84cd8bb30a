"""Command line (also the ``fastopt`` console script).

``fastopt info``: backends available here, and why the others are not.
``fastopt bench [kernels|optim|batchnorm|dropout|utils]``: times kernels on
every backend and baseline, prints one table (GB/s, share of copy bandwidth
and of the same-traffic twin, speed-ups over NumPy and torch); ``--json`` and
``--plot`` save the details. ``fastopt bench multi-tensor``: one Adam step
over 200 tensors; ``fastopt bench coexistence``: fastopt beside torch;
``fastopt bench 8bit``: 8-bit Adam beside its twin and the 8-bit baselines.
"""
from __future__ import annotations

import argparse
import sys


def _int_size(s: str) -> int:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {s!r}") from None
    if v < 1 or v != int(v):
        raise argparse.ArgumentTypeError(f"a size is a positive integer: {s!r}")
    return int(v)


def _csv(s: str) -> list:
    return [x.strip() for x in s.split(",") if x.strip()]


BENCH_TABLES = {"kernels": None, "optim": "optim", "batchnorm": "batchnorm",
                "dropout": "dropout", "utils": "utils"}
BENCH_COMMANDS = tuple(BENCH_TABLES) + ("multi-tensor", "coexistence", "8bit", "mixed-precision")


def _table_options(p, outputs_default):
    p.add_argument("--kernels", type=_csv, metavar="K1,K2",
                   help="kernels to run (default: all of the command's family); see --list")
    p.add_argument("--sizes", type=lambda s: [_int_size(x) for x in _csv(s)], metavar="N1,N2",
                   help="element counts, e.g. 1e3,1e5,1e7 (default 1e3,1e5,1e6,1e7,3e7)")
    p.add_argument("--backends", type=_csv, metavar="B1,B2",
                   help="backends and baselines to run (default: all available)")
    p.add_argument("--dtype", type=_csv, default=["float32"], metavar="float32[,float64]",
                   help="dtypes (default float32)")
    p.add_argument("--repeat", type=int, help="interleaved rounds per cell (default 7, quick 3)")
    p.add_argument("--min-time", type=float, metavar="SECONDS",
                   help="minimum duration of one sample (default 0.01, quick 0.005)")
    p.add_argument("--quick", action="store_true",
                   help="sizes 1e5,1e7, 3 rounds, 5 ms samples, smaller copy test")
    p.add_argument("--outputs", choices=("cached", "fresh", "both"), default=outputs_default,
                   help="outputs of batch norm and dropout, for every runner: reused buffers "
                        "(cached), new arrays each call (fresh: fastopt's buffer cache off), "
                        "or both (fresh in a child process) (default %(default)s)")
    p.add_argument("--json", metavar="FILE", help="save everything (samples included) as JSON")
    p.add_argument("--plot", metavar="FILE.png",
                   help="plot GB/s against size per backend (needs matplotlib)")
    p.add_argument("--list", action="store_true", help="list kernels and runners, then exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _bench_parser(sub):
    p = sub.add_parser(
        "bench", help="benchmark kernels on every backend and baseline",
        description="fastopt bench [kernels] times each kernel x size x dtype cell with every "
                    "fastopt backend and baseline interleaved round-robin (medians), and prints "
                    "one table; optim, batchnorm, dropout, utils: the same for one family "
                    "(dropout: cached and fresh outputs); multi-tensor: one Adam step over 200 "
                    "tensors against torch's fused Adam; coexistence: fastopt alone vs inside "
                    "a process that uses torch and numba.")
    bsub = p.add_subparsers(dest="bench_command", metavar="{" + ",".join(BENCH_COMMANDS) + "}")
    for name in BENCH_TABLES:
        helps = {"kernels": "every kernel (the default command)"}
        t = bsub.add_parser(name, help=helps.get(name, f"the {name} family's kernels"),
                            description="Runners: fastopt backends cpp, numba, numpy, cuda; "
                            "baselines numpy-plain (lecture-notes NumPy), numpy-out (NumPy with "
                            "out=), torch (fused/foreach optimizers, functional ops), torch-raw "
                            "(torch's raw fused Adam ops), twin (same-traffic trivial kernel, "
                            "always run).")
        _table_options(t, "both" if name == "dropout" else "cached")
    m = bsub.add_parser("multi-tensor", help="one Adam step over 200 tensors (10^7 elements)")
    m.add_argument("--total", type=_int_size, default=10_000_000, help="elements in all")
    m.add_argument("--repeat", type=int, default=15, help="interleaved rounds (default 15)")
    m.add_argument("--min-time", type=float, default=0.02, metavar="SECONDS")
    m.add_argument("--json", metavar="FILE")
    mp = bsub.add_parser("mixed-precision", help="Adam in bf16 / bf16+fp32 states / fp32 master "
                         "modes against twins and torch (10^7 elements)")
    mp.add_argument("--n", type=_int_size, default=10_000_000, help="elements")
    mp.add_argument("--repeat", type=int, default=15, help="interleaved rounds (default 15)")
    mp.add_argument("--min-time", type=float, default=0.05, metavar="SECONDS")
    mp.add_argument("--json", metavar="FILE")
    c = bsub.add_parser("coexistence", help="fastopt alone vs in a process using torch, numba")
    c.add_argument("--sizes", type=lambda s: [_int_size(x) for x in _csv(s)],
                   default=[1_000, 100_000, 1_000_000, 10_000_000], metavar="N1,N2")
    c.add_argument("--rounds", type=int, default=6, help="alternating child runs (default 6)")
    c.add_argument("--json", metavar="FILE")
    q = bsub.add_parser("8bit", help="8-bit Adam vs fp32, its twin, torch, torchao, bitsandbytes")
    q.add_argument("--n", type=_int_size, default=10_000_000, help="elements (default 10^7)")
    q.add_argument("--repeat", type=int, default=11, help="interleaved rounds (default 11)")
    q.add_argument("--min-time", type=float, default=0.05, metavar="SECONDS")
    q.add_argument("--numba", action="store_true", help="also time the numba backend")
    q.add_argument("--no-anchors", action="store_true", help="without torchao, bitsandbytes")
    q.add_argument("--json", metavar="FILE")
    return p


def _save(report, path):
    if path:
        from fastopt.bench import save_json
        save_json(report, path)
        print(f"saved {path}")


def _bench(args, parser, argv) -> int:
    cmd = args.bench_command
    if cmd == "multi-tensor":
        from fastopt.bench import multi_tensor
        if args.repeat < 1:
            parser.error("--repeat must be >= 1")
        r = multi_tensor.run(args.total, repeat=args.repeat, min_time=args.min_time)
        print(multi_tensor.format_report(r))
        _save(r, args.json)
        return 0
    if cmd == "mixed-precision":
        from fastopt.bench import mixed_precision
        r = mixed_precision.run(args.n, repeat=args.repeat, min_time=args.min_time)
        print(mixed_precision.format_report(r))
        _save(r, args.json)
        return 0
    if cmd == "coexistence":
        from fastopt.bench import coexistence
        r = coexistence.run(args.sizes, rounds=args.rounds)
        print(coexistence.format_report(r))
        _save(r, args.json)
        return 0
    if cmd == "8bit":
        from fastopt.bench import quantized
        r = quantized.run(args.n, repeat=args.repeat, min_time=args.min_time, numba=args.numba,
                          anchors=not args.no_anchors)
        print(quantized.format_report(r))
        _save(r, args.json)
        return 0
    return _bench_table(args, parser, argv)


def _fresh_child(argv, json_path) -> int:
    """Runs this command again with fresh outputs, in a child whose buffer cache is off."""
    import os
    import subprocess
    args, skip = [], False
    for a in argv:  # drop --outputs X / --outputs=X
        if not skip and not a.startswith("--outputs"):
            args.append(a)
        skip = a == "--outputs"
    if "--json" in args:
        args[args.index("--json") + 1] = json_path
    for opt in ("--json", "--plot"):   # absolute: the child runs in another directory
        if opt in args:
            i = args.index(opt) + 1
            args[i] = os.path.abspath(args[i])
    from fastopt.bench._child import same_fastopt
    child = same_fastopt()
    child["env"]["FASTOPT_BUFFER_CACHE_MB"] = "0"
    print("\nfresh outputs (fastopt's buffer cache off, every runner allocates):", flush=True)
    return subprocess.run([sys.executable, "-m", "fastopt"] + args + ["--outputs", "fresh"],
                          **child).returncode


def _bench_table(args, parser, argv) -> int:
    import os
    if args.outputs == "fresh":  # before any kernel allocates: the cache reads it once
        os.environ["FASTOPT_BUFFER_CACHE_MB"] = "0"
    from fastopt import bench
    family = BENCH_TABLES[args.bench_command]
    names = [k.name for k in bench.KERNELS.values() if family in (None, k.family)]
    if args.list:
        for k in bench.KERNELS.values():
            if k.name in names:
                print(f"{k.name:13s} {k.family:9s} {k.bytes_per_element('float32'):6g} B/elem "
                      f"(f32)  {k.doc}")
        print("runners:", ", ".join(bench.RUNNERS))
        return 0
    if args.plot:  # fail before measuring, not after
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'fastopt[bench]'")
    if args.kernels:
        unknown = [k for k in args.kernels if k not in names]
        if unknown:
            parser.error(f"unknown kernel(s) {', '.join(unknown)}; known: {', '.join(names)}")
        names = args.kernels
    if args.backends:
        unknown = [b for b in args.backends if b not in bench.RUNNERS]
        if unknown:
            parser.error(f"unknown backend(s) {', '.join(unknown)}; known: "
                         f"{', '.join(bench.RUNNERS)}")
    for d in args.dtype:
        if d not in ("float32", "float64"):
            parser.error(f"--dtype takes float32 and/or float64, got {d!r}")
    quick = args.quick
    sizes = args.sizes or (bench.QUICK_SIZES if quick else bench.DEFAULT_SIZES)
    repeat = args.repeat if args.repeat is not None else (3 if quick else 7)
    if repeat < 1:
        parser.error("--repeat must be >= 1")
    min_time = args.min_time if args.min_time is not None else (0.005 if quick else 0.01)
    if min_time < 0:
        parser.error("--min-time must be >= 0")
    from fastopt.bench import suite
    outputs = "cached" if args.outputs == "both" else args.outputs
    report = bench.run_suite(names, sizes, args.dtype, args.backends, repeat=repeat,
                             min_time=min_time,
                             copy_n=suite.QUICK_COPY_SIZE if quick else suite.COPY_SIZE,
                             progress=not args.no_progress, outputs=outputs)
    report["config"]["command"] = "fastopt " + " ".join(argv)
    print(bench.format_table(report))
    _save(report, args.json)
    if args.plot:
        bench.plot(report, args.plot)
        print(f"saved {args.plot}")
    if args.outputs == "both" and any(bench.get(k).allocates for k in names):
        root, ext = os.path.splitext(args.json or "")
        return _fresh_child(argv, f"{root}-fresh{ext}" if args.json else None)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastopt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    from fastopt.demo import cli as demo_cli
    demo_cli.add_arguments(sub.add_parser("demo", help=demo_cli.HELP))
    sub.add_parser("info", help="backends available here, and why the others are not")
    bench_parser = _bench_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"] and (len(argv) == 1 or argv[1] not in BENCH_COMMANDS + ("-h", "--help")):
        argv.insert(1, "kernels")  # `fastopt bench --quick` is `fastopt bench kernels --quick`
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo_cli.main(args)
    if args.command == "info":
        from fastopt._info import format_info, info
        print(format_info(info()))
    elif args.command == "bench":
        return _bench(args, bench_parser, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
