"""fastopt for torch users: ``fastopt.torch.SGD / RMSprop / Adam / AdamW / Adagrad``
(``torch.optim.Optimizer`` subclasses on fastopt's kernels, in ``optim.py``) and
``clip_grad_norm_``. Importing this package imports torch; ``import fastopt``
does not."""
from fastopt.torch.optim import SGD, Adagrad, Adam, AdamW, RMSprop, clip_grad_norm_

__all__ = ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "clip_grad_norm_"]
