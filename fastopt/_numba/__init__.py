"""The Numba backend: the NumPy reference's maths as ``@njit(parallel=True, cache=True)``
loops, the CPU fallback when the C++ extension is missing. Scalars are passed in
the array's dtype (a Python float would promote a float32 loop to float64)."""
