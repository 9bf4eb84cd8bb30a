"""Batch normalization forward and backward (docs/reference.md s.3), (N, 32, 64) inputs."""
from .common import DTYPES, RUNNERS, SIZES, _FamilyBenchmark, kernel_names


class BatchNorm(_FamilyBenchmark):
    params = [kernel_names("batchnorm", {"bn-forward"}), RUNNERS, SIZES, DTYPES]
