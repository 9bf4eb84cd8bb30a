"""Inverted dropout forward and backward (docs/reference.md s.4), p = 0.5."""
from .common import DTYPES, RUNNERS, SIZES, _FamilyBenchmark, kernel_names


class Dropout(_FamilyBenchmark):
    params = [kernel_names("dropout", {"drop-forward"}), RUNNERS, SIZES, DTYPES]
