"""The kernels' public entry points, one module per family: ``optim`` (the
optimizer steps), ``batchnorm``, ``dropout``, ``averaging`` (EMA) and ``clipping``
(gradient norms). Each function validates its whole call through
``fastopt._validate`` and then dispatches to one backend
(``fastopt.backends.<name>.<family>``)."""
