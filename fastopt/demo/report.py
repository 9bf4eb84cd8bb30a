"""The results: a text table and the learning-curve figure (matplotlib, no display needed)."""
from __future__ import annotations

import numpy as np

COLUMNS = ("optimizer", "peak lr", "train loss", "val acc", "test acc", "time (s)", "ms/step")


def table_rows(histories):
    return [(h.label, f"{h.lr:g}", f"{h.final_train_loss:.4f}", f"{100 * h.val_accuracy:.2f}%",
             f"{100 * h.test_accuracy:.2f}%", f"{h.seconds:.2f}",
             f"{1000 * h.step_seconds / max(1, len(h.iters)):.2f}") for h in histories]


def format_table(histories) -> str:
    """A Markdown table (readable as text): one row per optimizer.

    ``train loss`` is the mean mini-batch loss of the last epoch (training
    mode: batch statistics and dropout); the accuracies are measured in eval
    mode; ``time`` is the optimizer's whole training run (with its periodic
    validation), ``ms/step`` one forward + backward + update.
    """
    rows = [COLUMNS] + table_rows(histories)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]

    def line(r):
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(r, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])


def smooth(values, window):
    """Trailing moving average (window shrinks at the start)."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    for i in range(v.size):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def plot_curves(histories, path, *, title="", steps_per_epoch=1):
    """Two panels against the iteration: training loss (log scale; raw
    mini-batch losses faint, a half-epoch moving average solid) and
    validation accuracy (its range starts just below the worst value after the
    first epoch). One line (colour) per optimizer. Saved as PNG."""
    window = max(1, steps_per_epoch // 2)
    from matplotlib.figure import Figure   # no pyplot: works headless, no global state

    fig = Figure(figsize=(12, 4.8), dpi=110)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, h in enumerate(histories):
        colour = f"C{i}"
        if window > 1:
            ax_loss.plot(h.iters, h.train_loss, color=colour, alpha=0.18, linewidth=0.7)
        ax_loss.plot(h.iters, smooth(h.train_loss, window), color=colour, linewidth=1.6, label=h.label)
        ax_acc.plot(h.eval_iters, 100 * np.asarray(h.val_acc), color=colour, linewidth=1.6,
                    marker="o", markersize=2.5, label=f"{h.label} ({100 * h.val_accuracy:.1f}%)")
    if steps_per_epoch > 1:
        for ax in (ax_loss, ax_acc):
            top = ax.secondary_xaxis("top", functions=(lambda i: i / steps_per_epoch,
                                                       lambda e: e * steps_per_epoch))
            top.set_xlabel("epoch")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("training loss (mini-batch, softmax cross-entropy)")
    pad = 24 if steps_per_epoch > 1 else 6     # room for the epoch axis on top
    ax_loss.set_title("Training loss" + (f" ({window}-step moving average)" if window > 1 else ""), pad=pad)
    ax_loss.grid(True, which="both", alpha=0.3)
    ax_loss.legend()
    ax_acc.set_xlabel("iteration")
    ax_acc.set_ylabel("validation accuracy (%)")
    ax_acc.set_title("Validation accuracy (eval mode)", pad=pad)
    # the y range starts below the worst accuracy after the first epoch (earlier points may clip)
    lo = min((min([a for i, a in zip(h.eval_iters, h.val_acc) if i >= steps_per_epoch] or h.val_acc)
              for h in histories), default=0.0)
    ax_acc.set_ylim(max(0.0, 100 * lo - 5), 100.5)
    ax_acc.grid(True, alpha=0.3)
    ax_acc.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    return path
