"""The CUDA backend: ``csrc/cuda/*.cu`` compiled at first use by ``cupy.RawModule``
(``loader.py``) and launched on the caller's current CuPy stream. Modules per
family (``optim.py``, ...) have the same functions and signatures as
``fastopt/backends/cpp`` and ``fastopt/backends/numpy``; they receive validated cupy arrays."""
