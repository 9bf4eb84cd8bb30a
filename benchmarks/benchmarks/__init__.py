"""fastopt's asv suite: one class per kernel family, parametrized over backend
(fastopt's backends and the baselines), size and dtype. The kernels, their
inputs, runners and bytes per element come from fastopt.bench, the library
``fastopt bench`` uses too.

FASTOPT_ASV_SUBSET=1 shrinks every parameter list to a small subset (one
size, float32, three runners, a few kernels): the dashboard test uses it.
"""
