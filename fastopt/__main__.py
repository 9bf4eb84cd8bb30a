"""Command line: ``python -m fastopt info`` (also the ``fastopt`` console script)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastopt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from fastopt.demo import cli as demo_cli
    demo_cli.add_arguments(sub.add_parser("demo", help=demo_cli.HELP))
    sub.add_parser("info", help="backends available here, and why the others are not")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo_cli.main(args)
    if args.command == "info":
        from fastopt._info import format_info, info
        print(format_info(info()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
