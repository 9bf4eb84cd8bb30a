"""``fastopt demo``: a short run (one epoch, two optimizers) end to end, and reproducibility."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from fastopt.__main__ import main  # noqa: E402
from fastopt.demo import run  # noqa: E402
from fastopt.demo.data import load_digits_splits  # noqa: E402
from fastopt.demo.model import MLP, dropout_seed  # noqa: E402

SHORT = dict(epochs=1, optimizers=["sgd", "adam"], seed=7, progress=False)


def _run(out, **kw):
    lines = []
    result = run(out=str(out), echo=lines.append, **{**SHORT, **kw})
    return result, "\n".join(lines)


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("demo"))


def test_table_is_printed(short):
    result, text = short
    assert result.table in text
    header, sep, *rows = result.table.splitlines()
    for col in ("optimizer", "train loss", "val acc", "test acc", "time (s)"):
        assert col in header
    assert [r.split("|")[1].strip() for r in rows] == ["SGD", "Adam"]
    for h in result.histories:
        assert 0.0 <= h.val_accuracy <= 1.0 and 0.0 <= h.test_accuracy <= 1.0
        assert f"{100 * h.test_accuracy:.2f}%" in text
        assert h.seconds > 0


def test_png_is_written(short):
    result, text = short
    assert os.path.basename(result.png) == "learning_curves.png"
    assert result.png in text
    with open(result.png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread
    img = imread(result.png)
    assert img.shape[0] > 300 and img.shape[1] > 600
    with open(result.json) as f:
        saved = json.load(f)
    assert [o["name"] for o in saved["optimizers"]] == ["sgd", "adam"]


def test_gradient_check_passes(short):
    result, text = short
    check = result.gradcheck
    assert check.passed, str(check)
    assert check.checked >= 100
    assert check.max_abs_error < 1e-8
    assert "gradcheck PASSED" in text
    assert len(check.per_input) == 8          # W1, gamma1, beta1, W2, gamma2, beta2, W3, b3


def test_loss_falls(short):
    result, _ = short
    for h in result.histories:
        losses = np.asarray(h.train_loss)
        assert len(losses) == len(h.iters) == h.iters[-1] > 10
        assert np.isfinite(losses).all()
        assert losses[-4:].mean() < 0.5 * losses[:4].mean(), h.name
        assert h.val_acc[-1] > h.val_acc[0]
        assert h.val_accuracy > 0.6, h.name     # one epoch: well above chance (0.1)


def test_same_seed_same_numbers(short, tmp_path):
    first, _ = short
    again, _ = _run(tmp_path / "again")
    assert again.numbers() == first.numbers()
    assert again.gradcheck.max_rel_error == first.gradcheck.max_rel_error
    other, _ = _run(tmp_path / "other", seed=8, optimizers=["sgd"], gradcheck=False)
    assert other.numbers()[0]["train_loss"] != first.numbers()[0]["train_loss"]


def test_cli(tmp_path, capsys):
    rc = main(["demo", "--epochs", "1", "--optimizers", "momentum", "--out", str(tmp_path),
               "--no-progress", "--no-gradcheck", "--backend", "numpy"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| SGD+momentum" in out and "backend: numpy" in out
    assert (tmp_path / "learning_curves.png").is_file()
    assert main(["demo", "--optimizers", "lbfgs", "--out", str(tmp_path)]) == 2
    assert "unknown optimizer" in capsys.readouterr().err


def test_preprocessing_uses_training_split_only():
    d = load_digits_splits(0)
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 1797
    assert d.X_train.dtype == np.float32 and d.X_train.flags.c_contiguous
    np.testing.assert_allclose(d.X_train.mean(axis=0), 0, atol=1e-5)
    varying = d.std != 1.0
    np.testing.assert_allclose(d.X_train.std(axis=0)[varying], 1, rtol=1e-4)
    assert abs(d.X_val.mean(axis=0)).max() > 1e-3        # val/test use the train statistics
    for X in (d.X_val, d.X_test):            # undoing the train statistics gives raw pixels 0..16
        raw = X * d.std + d.mean
        np.testing.assert_allclose(raw, np.round(raw), atol=1e-4)
        assert raw.min() > -1e-4 and raw.max() < 16 + 1e-4


def test_eval_mode_uses_running_statistics_and_no_dropout():
    d = load_digits_splits(0)
    m = MLP((64, 32, 32, 10), 0.5, seed=1)
    before = [(a.copy(), b.copy()) for a, b in m.running]
    s1, _ = m.forward(d.X_val, training=False)
    s2, _ = m.forward(d.X_val, training=False)
    np.testing.assert_array_equal(s1, s2)
    for (a, b), (a0, b0) in zip(m.running, before):
        np.testing.assert_array_equal(a, a0)
        np.testing.assert_array_equal(b, b0)
    m.forward(d.X_train[:64], training=True, step=0)
    assert not np.array_equal(m.running[0][0], before[0][0])   # training updates them


def test_dropout_seeds_are_deterministic_and_distinct():
    seeds = {dropout_seed(s, t, l) for s in (0, 1) for t in range(50) for l in range(2)}
    assert len(seeds) == 200
    assert dropout_seed(3, 10, 1) == dropout_seed(3, 10, 1)
    assert all(0 <= s < 2**64 for s in seeds)


def test_he_initialization():
    m = MLP((64, 256, 256, 10), seed=0)
    for W in m.weights():
        assert abs(W.std() - np.sqrt(2.0 / W.shape[0])) < 0.1 * np.sqrt(2.0 / W.shape[0])


def test_8bit_adam_reaches_float32_adams_test_accuracy(tmp_path):
    """Issue 16: the demo's full run (20 epochs) with Adam on 8-bit state (the two
    weight matrices of 16384 and 65536 elements quantized) ends within 0.5 points of
    test accuracy of Adam on float32 state."""
    result, _ = _run(tmp_path, epochs=20, optimizers=["adam", "adam8bit"], seed=0)
    f32, q8 = result.histories
    assert q8.label == "Adam 8-bit"
    assert abs(q8.test_accuracy - f32.test_accuracy) <= 0.005, (q8.test_accuracy,
                                                                f32.test_accuracy)
