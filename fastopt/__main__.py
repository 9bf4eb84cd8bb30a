"""Command line (also the ``fastopt`` console script).

``fastopt info``: backends available here, and why the others are not.
``fastopt bench``: times every kernel on every backend and baseline, prints
one table (GB/s, share of copy bandwidth and of the same-traffic twin,
speed-ups over NumPy and torch); ``--json`` and ``--plot`` save the details.
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


def _bench_parser(sub):
    p = sub.add_parser(
        "bench", help="benchmark kernels on every backend and baseline",
        description="Times each kernel x size x dtype cell with every fastopt backend and "
                    "baseline interleaved round-robin (medians), and prints one table. "
                    "Runners: fastopt backends cpp, numba, numpy, cuda; baselines "
                    "numpy-plain (lecture-notes NumPy), numpy-out (NumPy with out=), torch "
                    "(fused/foreach optimizers, functional ops), torch-raw (torch's raw fused "
                    "Adam ops), twin (same-traffic trivial kernel, always run).")
    p.add_argument("--kernels", type=_csv, metavar="K1,K2",
                   help="kernels to run (default: all present); see --list")
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
    p.add_argument("--json", metavar="FILE", help="save everything (samples included) as JSON")
    p.add_argument("--plot", metavar="FILE.png",
                   help="plot GB/s against size per backend (needs matplotlib)")
    p.add_argument("--list", action="store_true", help="list kernels and runners, then exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _bench(args, parser) -> int:
    from fastopt import bench
    if args.list:
        for k in bench.KERNELS.values():
            why = k.missing()
            print(f"{k.name:13s} {k.family:9s} {k.bytes_per_element('float32'):6g} B/elem (f32)"
                  f"  {k.doc}" + (f"  [absent: {why}]" if why else ""))
        print("runners:", ", ".join(bench.RUNNERS))
        return 0
    if args.plot:  # fail before measuring, not after
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'fastopt[bench]'")
    if args.kernels:
        unknown = [k for k in args.kernels if k not in bench.KERNELS]
        if unknown:
            parser.error(f"unknown kernel(s) {', '.join(unknown)}; known: "
                         f"{', '.join(bench.KERNELS)}")
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
    report = bench.run_suite(args.kernels, sizes, args.dtype, args.backends, repeat=repeat,
                             min_time=min_time,
                             copy_n=suite.QUICK_COPY_SIZE if quick else suite.COPY_SIZE,
                             progress=not args.no_progress)
    report["config"]["command"] = "fastopt " + " ".join(sys.argv[1:]) if sys.argv else None
    print(bench.format_table(report))
    if args.json:
        bench.save_json(report, args.json)
        print(f"saved {args.json}")
    if args.plot:
        bench.plot(report, args.plot)
        print(f"saved {args.plot}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastopt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    from fastopt.demo import cli as demo_cli
    demo_cli.add_arguments(sub.add_parser("demo", help=demo_cli.HELP))
    sub.add_parser("info", help="backends available here, and why the others are not")
    bench_parser = _bench_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo_cli.main(args)
    if args.command == "info":
        from fastopt._info import format_info, info
        print(format_info(info()))
    elif args.command == "bench":
        return _bench(args, bench_parser)
    return 0


if __name__ == "__main__":
    sys.exit(main())
