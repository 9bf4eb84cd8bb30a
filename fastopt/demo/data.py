"""The data: scikit-learn's bundled 8x8 handwritten digits, split and standardized.

``sklearn.datasets.load_digits`` ships inside scikit-learn (1797 images, 64
pixels with values 0..16, 10 classes): nothing is downloaded. The split is
stratified, 60% train / 20% validation / 20% test, drawn from ``seed``.

Preprocessing follows the lecture notes' pitfall: the per-feature mean and
standard deviation are computed on the **training split only** and then
applied to all three splits (``X -= mean; X /= std``). Pixels that are constant
in the training split (std 0, e.g. the always-blank corners) are only centred.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Splits:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1

    def sizes(self) -> str:
        return f"{len(self.y_train)} train / {len(self.y_val)} val / {len(self.y_test)} test"


def standardize(X_train, *others):
    """Mean/std from ``X_train`` alone, applied to every array given.

    Returns ``(mean, std, [X_train_std, *others_std])``; ``std`` is 1 where a
    feature is constant in the training split.
    """
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return mean, std, [(X - mean) / std for X in (X_train, *others)]


def load_digits_splits(seed: int = 0, dtype=np.float32, val_fraction=0.2, test_fraction=0.2) -> Splits:
    """The digits, split train/val/test (stratified, from ``seed``) and standardized."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float64)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=test_fraction, random_state=seed % 2**32, stratify=y)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=val_fraction / (1.0 - test_fraction),
        random_state=(seed + 1) % 2**32, stratify=y_rest)
    mean, std, (X_train, X_val, X_test) = standardize(X_train, X_val, X_test)

    def arr(a):
        return np.ascontiguousarray(a, dtype=dtype)

    return Splits(arr(X_train), y_train.astype(np.int64), arr(X_val), y_val.astype(np.int64),
                  arr(X_test), y_test.astype(np.int64), mean, std)
