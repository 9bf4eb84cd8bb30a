"""``python -m fastopt.demo`` (same as ``python -m fastopt demo``)."""
import argparse
import sys

from fastopt.demo.cli import add_arguments, main

sys.exit(main(add_arguments(argparse.ArgumentParser(prog="fastopt demo")).parse_args()))
