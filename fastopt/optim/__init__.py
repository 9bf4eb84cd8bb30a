"""Optimizer classes over lists of arrays (torch.optim's API on fastopt kernels),
their state files, the parameter EMA and the learning-rate schedules.

- ``optimizer.py``: :class:`Optimizer`: parameter groups, lazy state, plans, ``step``.
- ``state.py``: state dicts (torch's layout) and atomic ``.npz`` files.
- ``sgd.py``, ``rmsprop.py``, ``adam.py`` (Adam, AdamW), ``adagrad.py``: one family each.
- ``ema.py``: :class:`EMA`. ``schedules.py``: ``t -> lr`` callables.
"""
from fastopt.optim.optimizer import Optimizer, slab_views
from fastopt.optim.state import load_state, save_state
from fastopt.optim.sgd import SGD
from fastopt.optim.rmsprop import RMSprop
from fastopt.optim.adam import Adam, AdamW
from fastopt.optim.adagrad import Adagrad
from fastopt.optim.ema import EMA
from fastopt.optim import schedules

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "EMA", "save_state",
           "load_state", "schedules", "slab_views"]
