"""fastopt for torch users: ``fastopt.torch.SGD / RMSprop / Adam / AdamW / Adagrad``
(``torch.optim.Optimizer`` subclasses on fastopt's kernels, in ``optim.py``) and
``clip_grad_norm_``; layers ``BatchNorm1d / 2d / 3d``, ``Dropout``, ``batch_norm``,
``dropout`` and ``convert`` (``layers.py``, on the ``torch.ops.fastopt`` custom ops of
``ops.py``). Importing this package imports torch; ``import fastopt``
does not."""
from fastopt.torch.optim import SGD, Adagrad, Adam, AdamW, RMSprop, clip_grad_norm_
from fastopt.torch.layers import (BatchNorm1d, BatchNorm2d, BatchNorm3d, Dropout, batch_norm,
                                  convert, dropout)

__all__ = ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "clip_grad_norm_",
           "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Dropout", "batch_norm", "dropout", "convert"]
