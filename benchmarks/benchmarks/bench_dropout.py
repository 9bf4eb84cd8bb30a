"""Inverted dropout forward and backward (DESIGN.md s.5), p = 0.5."""
from .common import DTYPES, RUNNERS, SIZES, _FamilyBenchmark, kernel_names


class Dropout(_FamilyBenchmark):
    params = [kernel_names("dropout", {"drop-forward"}), RUNNERS, SIZES, DTYPES]
